"""The pipeline's driver: records in, prompts out, one pass per record and one transaction per batch.

    read -> validate -> normalize -> exact dedup -> near-duplicate detection -> classify -> tag -> score
         -> store + version (atomic per batch, with the run's counts) -> propagate (once per call)

Outcomes: a valid record whose normalized text is new in the scope is `accepted`; one whose text is already there
(in the bank, or earlier in the same input) is a `duplicate` and is not stored; one that is close to an existing
prompt is stored as a `near_duplicate`, linked to it; an invalid one is `rejected` with a line-numbered reason.

With an `IngestionRun`, each batch's prompts, versions and the run's counts, errors and `lines_done` are written in
the same transaction, so a run killed at any moment has committed whole batches only and its counts match them; run
again, it skips the lines up to `lines_done` and finishes the job without losing or duplicating anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization, User
from evalence.errors import ValidationFailed
from promptbank.choices import DEFAULT_SEVERITY
from promptbank.models import COUNT_FIELDS, IngestionRun, Prompt, PromptVersion
from promptbank.pipeline import dedup, minhash, store
from promptbank.pipeline.classify import classify
from promptbank.pipeline.normalize import text_hash
from promptbank.pipeline.propagate import propagate
from promptbank.pipeline.quality import quality_score
from promptbank.pipeline.readers import FileFormatError, ReadError
from promptbank.pipeline.tagging import tag
from promptbank.pipeline.validate import Rejected, ValidRecord, validate_record

MAX_ERRORS = 1000
ANALYZE_AFTER = 5000  # stored prompts after which (and at each doubling) PostgreSQL's statistics are refreshed
ACCEPTED, DUPLICATE, NEAR_DUPLICATE, REJECTED = "accepted", "duplicate", "near_duplicate", "rejected"


@dataclass
class RecordOutcome:
    """What happened to one record. `prompt_id`: the prompt created, or for a duplicate the one that already holds
    the text (None when rejected)."""

    line: int
    status: str
    prompt_id: uuid.UUID | None
    reason: str = ""
    near_duplicate_of: uuid.UUID | None = None


@dataclass
class IngestResult:
    """Counts of an ingest. With a run, they are the run's totals (including an earlier, interrupted execution)."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)  # [{"line", "reason"}], the first MAX_ERRORS
    outcomes: list[RecordOutcome] = field(default_factory=list)  # only with keep_outcomes=True
    errors_total: int = 0
    lines_done: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    @classmethod
    def of_run(cls, run: IngestionRun) -> IngestResult:
        return cls(
            **run.counts(), errors=list(run.errors or []), errors_total=run.errors_total, lines_done=run.lines_done
        )

    def plus(self, other: IngestResult) -> IngestResult:
        """These totals with another batch's added (outcomes are not carried)."""
        return IngestResult(
            received=self.received + other.received,
            accepted=self.accepted + other.accepted,
            duplicates=self.duplicates + other.duplicates,
            near_duplicates=self.near_duplicates + other.near_duplicates,
            rejected=self.rejected + other.rejected,
            errors=(self.errors + other.errors[: max(0, MAX_ERRORS - len(self.errors))]),
            errors_total=self.errors_total + other.errors_total,
            lines_done=max(self.lines_done, other.lines_done),
        )


@dataclass
class _Item:
    record: ValidRecord
    status: str = ""
    prompt_id: uuid.UUID | None = None
    first: _Item | None = None  # an earlier copy in the same batch
    query: dedup.NearDuplicateQuery | None = None
    signature: bytes = b""
    row: dict[str, Any] | None = None  # the prompt's column values, by attname


class _Pipeline:
    def __init__(
        self,
        *,
        organization: Organization | None,
        source_name: str,
        license: str,
        author: User | None,
        run: IngestionRun | None,
        keep_outcomes: bool,
        batch_size: int | None,
        on_batch: Callable[[IngestResult], None] | None,
        variant_of: Prompt | None = None,
        mutator: str = "",
    ) -> None:
        source_name = (source_name or "").strip()
        if not source_name:
            raise ValidationFailed("A source name is required (the `source` of prompts that do not name one).")
        if len(source_name) > 64:
            raise ValidationFailed("The source name is longer than 64 characters.")
        if len(license or "") > 64:
            raise ValidationFailed("The licence identifier is longer than 64 characters.")
        if run is not None and run.organization_id != (organization.pk if organization else None):
            raise ValueError("the run belongs to another scope than the one being imported into")
        self.organization = organization
        self.organization_id = organization.pk if organization is not None else None
        self.author_id = author.pk if author is not None else None
        self.source_name = source_name
        self.license = license or ""
        self.author = author
        self.run = run
        self.keep_outcomes = keep_outcomes
        self.batch_size = max(1, batch_size or settings.PROMPTBANK_BATCH_SIZE)
        self.on_batch = on_batch
        self.variant_of = variant_of
        self.mutator = mutator
        self.threshold = settings.PROMPTBANK_NEAR_DUPLICATE_THRESHOLD
        self.note = f"ingested from {source_name}" + (f" (import {run.pk})" if run else "")

    def execute(self, records: Iterable[tuple[int, Any]], *, source_type: str, source_id: str = "") -> IngestResult:
        result = IngestResult.of_run(self.run) if self.run is not None else IngestResult()
        skip = self.run.lines_done if self.run is not None else 0
        created: list[uuid.UUID] = []
        with dedup.scope_index(self.organization) as scope:
            start_rows = scope.fingerprint[0] if scope.fingerprint else 0
            next_analyze = max(ANALYZE_AFTER, start_rows)  # once the table has doubled, then at each doubling
            for batch in _batches(records, self.batch_size, skip):
                delta, stored = self._batch(batch, scope, result)
                outcomes = result.outcomes
                outcomes.extend(delta.outcomes)
                result = result.plus(delta)
                result.outcomes = outcomes
                created += stored
                if len(created) >= next_analyze:
                    _refresh_statistics()
                    next_analyze = 2 * (start_rows + len(created)) - start_rows
                if self.on_batch is not None:
                    self.on_batch(result)
        if created:
            with transaction.atomic():
                propagate(
                    organization=self.organization,
                    prompt_ids=created,
                    counts=result.counts(),
                    source_name=self.source_name,
                    source_type=source_type,
                    source_id=source_id,
                )
        return result

    # --- one batch ------------------------------------------------------------------------------------------------

    def _batch(
        self, batch: list[tuple[int, Any]], scope: dedup.ScopeIndex, totals: IngestResult
    ) -> tuple[IngestResult, list[uuid.UUID]]:
        delta = IngestResult(received=len(batch), lines_done=batch[-1][0])
        outcomes: list[RecordOutcome] = []
        items: list[_Item] = []
        for line, raw in batch:
            try:
                if isinstance(raw, ReadError):
                    raise Rejected(raw.reason)
                record = validate_record(raw, line=line, default_source=self.source_name, default_license=self.license)
            except Rejected as exc:
                reason = f"line {line}: {exc}"
                delta.rejected += 1
                delta.errors_total += 1
                if len(delta.errors) < MAX_ERRORS:
                    delta.errors.append({"line": line, "reason": reason})
                outcomes.append(RecordOutcome(line, REJECTED, None, reason))
                continue
            if self.variant_of is not None:
                self._as_variant(record)
            items.append(_Item(record))

        fresh = self._deduplicate(items, scope)
        now = timezone.now()
        rows = [self._build(item, now) for item in fresh]

        with transaction.atomic():
            lost = store.save_batch(rows, organization=self.organization, changed_by_id=self.author_id, note=self.note)
            stored = self._settle(items, lost, delta, outcomes)
            if self.run is not None:
                self._save_run(totals.plus(delta))

        # Committed: the index keeps the new prompts, minus any that lost a race to another writer.
        if lost:
            scope.index.discard([item.query.position for item in fresh if item.prompt_id in lost and item.query])
        kept = len(rows) - len(lost)
        texts = {item.prompt_id: item.query.normalized for item in fresh if item.query and item.prompt_id not in lost}
        scope.stored(kept, now if kept else None, texts)
        if self.keep_outcomes:
            delta.outcomes = sorted(outcomes, key=lambda o: o.line)
        return delta, stored

    def _as_variant(self, record: ValidRecord) -> None:
        parent = self.variant_of
        assert parent is not None
        record.variant_of_id = parent.pk
        record.mutator = self.mutator
        if record.hash == parent.normalized_hash:
            # The mutation is invisible once normalized (zero-width characters, compatibility forms): the variant
            # is still its own prompt, keyed by its text and its mutator.
            record.hash = text_hash(f"{record.normalized}\x00variant:{self.mutator}")

    def _deduplicate(self, items: list[_Item], scope: dedup.ScopeIndex) -> list[_Item]:
        """Mark exact duplicates (within the batch and in the scope); place the rest in the index and find their
        near duplicates. Returns the items to store, each with its new prompt id."""
        first: dict[str, _Item] = {}
        unique: list[_Item] = []
        for item in items:
            earlier = first.get(item.record.hash)
            if earlier is not None:
                item.status, item.first = DUPLICATE, earlier
                continue
            first[item.record.hash] = item
            unique.append(item)
        existing = dedup.existing_prompts(self.organization, [item.record.hash for item in unique])
        fresh: list[_Item] = []
        for item in unique:
            if item.record.hash in existing:
                item.status, item.prompt_id = DUPLICATE, existing[item.record.hash]
            else:
                item.prompt_id = uuid.uuid4()
                item.query = dedup.NearDuplicateQuery(
                    key=item.prompt_id, normalized=item.record.normalized.casefold(), exclude=item.record.variant_of_id
                )
                fresh.append(item)
        sigs = dedup.find_near_duplicates(scope, [item.query for item in fresh if item.query], self.threshold)
        for item, sig in zip(fresh, sigs, strict=True):
            item.status = NEAR_DUPLICATE if item.query and item.query.duplicate_of else ACCEPTED
            item.signature = minhash.to_bytes(sig)
        return fresh

    def _build(self, item: _Item, now: datetime) -> dict[str, Any]:
        """The new prompt's row: classified (when the source gave no category), tagged and scored."""
        record, query = item.record, item.query
        assert query is not None
        confidence = None
        category = record.category
        if not category:
            category, confidence = classify(record.normalized, label=record.label)
        tags, language = tag(record.text, record.normalized, normalization_tags=record.normalization_tags)
        item.row = {
            "id": item.prompt_id,
            "organization_id": self.organization_id,
            "created_at": now,
            "text": record.text,
            "normalized_hash": record.hash,
            "label": record.label,
            "category": category,
            "category_confidence": confidence,
            "subcategory": record.subcategory,
            "attack_type": record.attack_type,
            "severity": record.severity or DEFAULT_SEVERITY[category],
            "tags": sorted(set(record.tags) | set(tags)),
            "language": record.language or language,
            "source": record.source,
            "source_ref": record.source_ref,
            "license": record.license,
            "version": 1,
            "is_active": True,
            "quality_score": quality_score(
                text=record.text,
                normalized=record.normalized,
                max_similarity=query.similarity,
                confidence=1.0 if confidence is None else confidence,
            ),
            "variant_of_id": record.variant_of_id,
            "mutator": record.mutator,
            "near_duplicate_of_id": query.duplicate_of,
            "near_duplicate_similarity": round(query.similarity, 4) if query.duplicate_of else None,
            "minhash": item.signature,
            "author_id": self.author_id,
            "updated_at": now,
        }
        return item.row

    def _settle(
        self, items: list[_Item], lost: dict[uuid.UUID, uuid.UUID], delta: IngestResult, outcomes: list[RecordOutcome]
    ) -> list[uuid.UUID]:
        """Final status of every valid item once the batch is written; returns the ids of the prompts stored."""
        stored: list[uuid.UUID] = []
        for item in items:
            if item.first is not None:
                item.prompt_id = item.first.prompt_id  # already final: the first copy comes earlier
            elif item.prompt_id in lost:
                item.status, item.prompt_id = DUPLICATE, lost[item.prompt_id]
            near = None
            if item.status == DUPLICATE:
                delta.duplicates += 1
            else:
                assert item.prompt_id is not None and item.row is not None
                stored.append(item.prompt_id)
                near = item.row["near_duplicate_of_id"]
                if item.status == NEAR_DUPLICATE:
                    delta.near_duplicates += 1
                else:
                    delta.accepted += 1
            outcomes.append(RecordOutcome(item.record.line, item.status, item.prompt_id, near_duplicate_of=near))
        return stored

    def _save_run(self, totals: IngestResult) -> None:
        run = self.run
        assert run is not None
        values = {**totals.counts(), "errors": totals.errors, "errors_total": totals.errors_total}
        values["lines_done"] = totals.lines_done
        IngestionRun.objects.filter(pk=run.pk).update(**values)
        for name, value in values.items():
            setattr(run, name, value)


def _refresh_statistics() -> None:
    """PostgreSQL plans with the statistics it has: a table that grew from empty to thousands of rows in one import
    still looks empty until autovacuum analyzes it, and the hash lookups of every batch turn into full scans. So an
    ingest that has more than doubled what was there refreshes them itself (ANALYZE samples; it takes milliseconds)."""
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in (Prompt, PromptVersion):
            cursor.execute(f"ANALYZE {quote(model._meta.db_table)}")


def _batches(records: Iterable[tuple[int, Any]], size: int, skip: int) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    try:
        for line, record in records:
            if line <= skip:
                continue
            batch.append((line, record))
            if len(batch) >= size:
                yield batch
                batch = []
    except FileFormatError:
        # The rest of the file cannot be read: keep what could be, then fail the import with the reason.
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def ingest_records(
    records: Iterable[tuple[int, Any]],
    *,
    organization: Organization | None,
    source_name: str,
    license: str = "",
    author: User | None = None,
    run: IngestionRun | None = None,
    keep_outcomes: bool = False,
    batch_size: int | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
) -> IngestResult:
    """Run `(line, record)` pairs through the pipeline into `organization`'s bank (None: the global bank).

    Records are dicts, or `readers.ReadError` for lines a reader could not read. `source_name` and `license` are the
    defaults for records that do not carry their own. With `run`, the run's counts, errors and `lines_done` are
    updated in each batch's transaction, lines up to `run.lines_done` are skipped (resume), and the result holds the
    run's totals. `on_batch` is called with the totals after each committed batch (progress events).
    """
    pipeline = _Pipeline(
        organization=organization,
        source_name=source_name,
        license=license,
        author=author,
        run=run,
        keep_outcomes=keep_outcomes,
        batch_size=batch_size,
        on_batch=on_batch,
    )
    if run is not None:
        return pipeline.execute(records, source_type="promptbank.IngestionRun", source_id=str(run.pk))
    return pipeline.execute(records, source_type="promptbank.pipeline")


def ingest_one(
    record: dict[str, Any],
    *,
    organization: Organization | None,
    source_name: str,
    author: User | None = None,
    variant_of: Prompt | None = None,
    mutator: str = "",
    license: str = "",
) -> RecordOutcome:
    """One record through the pipeline (a prompt created by hand, a variant, an accepted submission, a finding).

    A variant (`variant_of` + `mutator`) is linked to its parent and never reported as a near duplicate of it; one
    whose mutation disappears in normalization (zero-width characters) is still stored as its own prompt.
    """
    pipeline = _Pipeline(
        organization=organization,
        source_name=source_name,
        license=license,
        author=author,
        run=None,
        keep_outcomes=True,
        batch_size=1,
        on_batch=None,
        variant_of=variant_of,
        mutator=mutator,
    )
    result = pipeline.execute([(1, record)], source_type="promptbank.Prompt")
    return result.outcomes[0]
