"""Writes to the prompt bank: prompts and their versions, variants, the review queue, releases and usage statistics
(imports are in `promptbank.imports`, exports in `promptbank.exports`). Everything that adds prompts goes through the
ingestion pipeline (`promptbank.pipeline`), so a prompt created by hand, by a mutator, by an accepted submission or by
a file import is validated, normalized, de-duplicated, classified, tagged and scored the same way.

Services take plain arguments (an organization, not a request). `organization=None` means the global bank, which
only superusers (the admin, commands) write to; API and page views always pass the caller's organization.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiKey, Organization, User
from evalence.errors import Conflict, NotFound, ValidationFailed
from promptbank import mutators as mutator_registry
from promptbank import pipeline
from promptbank.choices import (
    Category,
    Label,
    LearningEventType,
    ReleaseBump,
    Severity,
    SubmissionStatus,
)
from promptbank.models import (
    BankRelease,
    LearningEvent,
    Prompt,
    PromptStats,
    PromptVersion,
    ReleaseEntry,
    Submission,
)
from promptbank.pipeline.validate import MAX_TEXT_CHARS
from promptbank.selectors import release_prompt_versions, scope_q
from promptbank.signals import prompts_changed, release_created

logger = logging.getLogger("evalence.promptbank")

# --- learning events ----------------------------------------------------------------------------------------------


def learning_event_record(
    *,
    organization: Organization | None,
    event_type: str,
    source: Any = None,
    source_type: str = "",
    source_id: str = "",
    action: str,
    result: dict | None = None,
    prompt: Prompt | None = None,
) -> LearningEvent:
    """Write one step of the learning loop. Pass the source object, or its `app_label.Model` and id."""
    if source is not None:
        source_type = source_type or source._meta.label
        source_id = source_id or str(source.pk)
    return LearningEvent.objects.create(
        organization=organization,
        event_type=event_type,
        source_type=source_type or "unknown",
        source_id=source_id,
        action=action[:200],
        result=result or {},
        prompt=prompt,
    )


def _changed(organization: Organization | None, prompt_ids: list[Any], reason: str) -> None:
    """Tell subscribers (the firewall's indexes) once the transaction commits that these prompts changed."""
    ids = [str(pk) for pk in prompt_ids]

    def send() -> None:
        prompts_changed.send(sender=Prompt, organization=organization, prompt_ids=ids, reason=reason)

    transaction.on_commit(send)


# --- prompts ------------------------------------------------------------------------------------------------------


@dataclass
class PromptCreated:
    """What `prompt_create` did: `status` is "accepted", "duplicate" (the existing prompt is returned) or
    "near_duplicate" (stored, linked to its near duplicate)."""

    prompt: Prompt
    status: str

    @property
    def created(self) -> bool:
        return self.status != "duplicate"


def _ingest(record: dict[str, Any], **options: Any) -> PromptCreated:
    """One record through the pipeline (empty fields left out, so its defaults and classifier apply); a rejected
    record raises ValidationFailed with the pipeline's reason."""
    outcome = pipeline.ingest_one({k: v for k, v in record.items() if v not in ("", [], None)}, **options)
    if outcome.status == "rejected" or outcome.prompt_id is None:
        raise ValidationFailed(outcome.reason or "The prompt was rejected.", fields={"text": [outcome.reason]})
    return PromptCreated(prompt=Prompt.objects.get(pk=outcome.prompt_id), status=outcome.status)


def prompt_create(
    *,
    organization: Organization | None,
    text: str,
    label: str,
    category: str = "",
    severity: str = "",
    tags: Iterable[str] = (),
    subcategory: str = "",
    attack_type: str = "",
    language: str = "",
    source: str = "manual",
    source_ref: str = "",
    license: str = "",
    author: User | None = None,
) -> PromptCreated:
    """Add one prompt through the pipeline. Raises ValidationFailed (with the pipeline's reason) for a bad record."""
    record = {
        "text": text,
        "label": label,
        "category": category,
        "severity": severity,
        "tags": list(tags),
        "subcategory": subcategory,
        "attack_type": attack_type,
        "language": language,
        "source": source,
        "source_ref": source_ref,
        "license": license,
    }
    return _ingest(record, organization=organization, source_name=source or "manual", author=author, license=license)


def _clean_changes(prompt: Prompt, changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(Prompt.VERSIONED_FIELDS))
    if unknown:
        raise ValidationFailed(f"These fields cannot be changed: {', '.join(unknown)}.")
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in changes.items():
        if name == "text":
            value = (value or "").strip()
            if not value:
                errors[name] = ["The text is empty."]
            elif len(value) > MAX_TEXT_CHARS:
                errors[name] = [f"The text is longer than {MAX_TEXT_CHARS:,} characters ({len(value):,})."]
        elif name == "label" and value not in Label.values:
            errors[name] = [f"Unknown label {value!r}; expected attack or benign."]
        elif name == "category" and value not in Category.values:
            errors[name] = [f"Unknown category {value!r}; expected one of {', '.join(Category.values)}."]
        elif name == "severity" and value not in Severity.values:
            errors[name] = [f"Unknown severity {value!r}; expected one of {', '.join(Severity.values)}."]
        elif name == "tags":
            if isinstance(value, str):
                value = [t for t in (part.strip() for part in value.split(",")) if t]
            if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
                errors[name] = ["Tags must be a list of strings."]
            else:
                value = sorted({t.strip().lower()[:64] for t in value if t.strip()})
        elif name == "is_active":
            value = bool(value)
        elif isinstance(value, str):
            value = value.strip()
        cleaned[name] = value
    label = cleaned.get("label", prompt.label)
    category = cleaned.get("category", prompt.category)
    if "label" in cleaned or "category" in cleaned:
        if label == Label.BENIGN and "category" not in cleaned:
            cleaned["category"] = category = Category.BENIGN
        if (label == Label.BENIGN) != (category == Category.BENIGN):
            errors.setdefault("category", []).append("A benign prompt has the category benign, and only it does.")
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], fields=errors)
    return cleaned


def _write_version(prompt: Prompt, *, actor: User | None, note: str) -> PromptVersion:
    snapshot = prompt.snapshot()
    text = snapshot.pop("text")
    return PromptVersion.objects.create(
        organization=prompt.organization,
        prompt=prompt,
        version=prompt.version,
        text=text,
        fields=snapshot,
        changed_by=actor,
        change_note=note[:500],
    )


@transaction.atomic
def prompt_update(*, prompt: Prompt, actor: User | None, change_note: str = "", **changes: Any) -> Prompt:
    """Change a prompt's versioned fields (see `Prompt.VERSIONED_FIELDS`); writes a new `PromptVersion` when anything
    changed. A new text is re-normalized; one that duplicates another prompt in scope raises Conflict."""
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    cleaned = _clean_changes(prompt, changes)
    changed = {name: value for name, value in cleaned.items() if getattr(prompt, name) != value}
    if not changed:
        return prompt
    if "text" in changed:
        normalized = pipeline.normalize_text(changed["text"])
        clash = (
            Prompt.objects.filter(scope_q(prompt.organization), normalized_hash=normalized.hash)
            .exclude(pk=prompt.pk)
            .first()
        )
        if clash is not None:
            raise Conflict(
                f"Another prompt in this bank already has this text ({clash.pk}).", fields={"text": ["Duplicate."]}
            )
        prompt.normalized_hash = normalized.hash
        prompt.minhash = pipeline.signature_bytes(normalized.text)
    for name, value in changed.items():
        setattr(prompt, name, value)
    prompt.version += 1
    try:
        with transaction.atomic():
            prompt.save()
    except IntegrityError:
        raise Conflict("Another prompt in this bank already has this text.", fields={"text": ["Duplicate."]}) from None
    _write_version(prompt, actor=actor, note=change_note or f"changed {', '.join(sorted(changed))}")
    event = LearningEventType.PROMPT_UPDATED
    if changed.keys() == {"is_active"}:
        event = LearningEventType.PROMPT_UPDATED if prompt.is_active else LearningEventType.PROMPT_DEACTIVATED
    learning_event_record(
        organization=prompt.organization,
        event_type=event,
        source=prompt,
        action=f"v{prompt.version}: {', '.join(sorted(changed))}",
        result={"version": prompt.version, "fields": sorted(changed)},
        prompt=prompt,
    )
    _changed(prompt.organization, [prompt.pk], "updated")
    return prompt


def prompt_set_active(*, prompt: Prompt, active: bool, actor: User | None) -> Prompt:
    """Deactivate (or reactivate) a prompt: a new version, so releases keep what they had."""
    return prompt_update(
        prompt=prompt, actor=actor, is_active=active, change_note="reactivated" if active else "deactivated"
    )


def _variant_seed(prompt: Prompt, mutator: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{prompt.pk}:{mutator}".encode()).digest()[:4], "big")


@transaction.atomic
def variants_create(
    *, prompt: Prompt, mutators: Iterable[str], organization: Organization | None, actor: User | None
) -> list[PromptCreated]:
    """Make one variant per mutator (see `promptbank.mutators`), each its own prompt linked to `prompt` by
    `variant_of`, in `organization`'s bank (a tenant can make variants of global prompts into its own bank)."""
    if prompt.organization_id is not None and prompt.organization_id != getattr(organization, "pk", None):
        raise NotFound("No such prompt.")
    names = list(dict.fromkeys(mutators))
    if not names:
        raise ValidationFailed("Choose at least one mutator.", fields={"mutators": ["Required."]})
    unknown = [name for name in names if name not in mutator_registry.MUTATORS]
    if unknown:
        known = ", ".join(sorted(mutator_registry.MUTATORS))
        raise ValidationFailed(
            f"Unknown mutator {unknown[0]!r}; expected one of {known}.", fields={"mutators": [f"Unknown: {unknown}"]}
        )
    created: list[PromptCreated] = []
    for name in names:
        text = mutator_registry.apply(name, prompt.text, seed=_variant_seed(prompt, name))
        record = {
            "text": text,
            "label": prompt.label,
            "category": prompt.category,
            "severity": prompt.severity,
            "tags": sorted({*prompt.tags, name}),
            "subcategory": prompt.subcategory,
            "attack_type": name,
            "source": prompt.source,
            "source_ref": f"variant of {prompt.pk} ({name})",
            "license": prompt.license,
        }
        created.append(
            _ingest(
                record,
                organization=organization,
                source_name=prompt.source,
                author=actor,
                variant_of=prompt,
                mutator=name,
                license=prompt.license,
            )
        )
    learning_event_record(
        organization=organization,
        event_type=LearningEventType.VARIANTS_CREATED,
        source=prompt,
        action=f"{len(created)} variant(s): {', '.join(names)}",
        result={"variants": [str(c.prompt.pk) for c in created], "statuses": [c.status for c in created]},
        prompt=prompt,
    )
    return created


# --- submissions --------------------------------------------------------------------------------------------------


def _check_submission_fields(text: str, label: str, category: str, severity: str) -> str:
    text = (text or "").strip()
    errors: dict[str, list[str]] = {}
    if not text:
        errors["text"] = ["The text is empty."]
    elif len(text) > MAX_TEXT_CHARS:
        errors["text"] = [f"The text is longer than {MAX_TEXT_CHARS:,} characters ({len(text):,})."]
    if label not in Label.values:
        errors["label"] = [f"Unknown label {label!r}; expected attack or benign."]
    if category and category not in Category.values:
        errors["category"] = [f"Unknown category {category!r}; expected one of {', '.join(Category.values)}."]
    if severity and severity not in Severity.values:
        errors["severity"] = [f"Unknown severity {severity!r}; expected one of {', '.join(Severity.values)}."]
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], fields=errors)
    return text


@transaction.atomic
def submission_create(
    *,
    organization: Organization,
    text: str,
    label: str = "attack",
    category: str = "",
    severity: str = "",
    tags: Iterable[str] = (),
    source: str = "user",
    source_ref: str = "",
    notes: str = "",
    metadata: dict | None = None,
    submitter: User | None = None,
    submitter_key: ApiKey | None = None,
) -> Submission:
    """Queue a proposed prompt for review. A pending submission with the same normalized text is counted again
    (`occurrences` + 1) instead of queued twice."""
    text = _check_submission_fields(text, label, category, severity)
    normalized_hash = pipeline.normalize_text(text).hash
    pending = (
        Submission.objects.select_for_update()
        .filter(organization=organization, normalized_hash=normalized_hash, status=SubmissionStatus.PENDING)
        .first()
    )
    if pending is not None:
        Submission.objects.filter(pk=pending.pk).update(occurrences=F("occurrences") + 1)
        pending.refresh_from_db()
        return pending
    submission = Submission.objects.create(
        organization=organization,
        text=text,
        normalized_hash=normalized_hash,
        label=label,
        category=category,
        severity=severity,
        tags=sorted({t.strip().lower()[:64] for t in tags if t and t.strip()}),
        source=(source or "user")[:64],
        source_ref=source_ref[:500],
        notes=notes,
        metadata=metadata or {},
        submitter=submitter,
        submitter_key=submitter_key,
    )
    learning_event_record(
        organization=organization,
        event_type=LearningEventType.SUBMISSION_CREATED,
        source=submission,
        action=f"submission from {submission.source}",
        result={"label": label, "category": category},
    )
    return submission


def _lock_pending(submission: Submission) -> Submission:
    locked = Submission.objects.select_for_update().get(pk=submission.pk)
    if locked.status != SubmissionStatus.PENDING:
        raise Conflict(f"This submission was already {locked.status}.")
    return locked


@transaction.atomic
def submission_accept(*, submission: Submission, reviewer: User | None, reason: str = "") -> Submission:
    """Accept a pending submission into its organization's bank through the pipeline; links the created (or
    already existing) prompt."""
    submission = _lock_pending(submission)
    record = {
        "text": submission.text,
        "label": submission.label,
        "category": submission.category,
        "severity": submission.severity,
        "tags": submission.tags,
        "source": submission.source,
        "source_ref": submission.source_ref or f"submission {submission.pk}",
    }
    created = _ingest(
        record,
        organization=submission.organization,
        source_name=submission.source,
        author=submission.submitter or reviewer,
    )
    submission.status = SubmissionStatus.ACCEPTED
    submission.reviewer = reviewer
    submission.reviewed_at = timezone.now()
    submission.reason = reason
    submission.prompt = created.prompt
    submission.save(update_fields=["status", "reviewer", "reviewed_at", "reason", "prompt"])
    if not created.created:
        # An existing prompt (often a shared one) now protects this organization too: its indexes must hear of it.
        _changed(submission.organization, [created.prompt.pk], "submission_accepted")
    learning_event_record(
        organization=submission.organization,
        event_type=LearningEventType.SUBMISSION_ACCEPTED,
        source=submission,
        action=f"accepted into the bank ({created.status})",
        result={"prompt_id": str(created.prompt.pk), "status": created.status, "source": submission.source},
        prompt=created.prompt,
    )
    return submission


@transaction.atomic
def submission_reject(*, submission: Submission, reviewer: User | None, reason: str) -> Submission:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why the submission is rejected.", fields={"reason": ["Required."]})
    submission = _lock_pending(submission)
    submission.status = SubmissionStatus.REJECTED
    submission.reviewer = reviewer
    submission.reviewed_at = timezone.now()
    submission.reason = reason
    submission.save(update_fields=["status", "reviewer", "reviewed_at", "reason"])
    learning_event_record(
        organization=submission.organization,
        event_type=LearningEventType.SUBMISSION_REJECTED,
        source=submission,
        action="rejected",
        result={"reason": reason[:500]},
    )
    return submission


# --- releases -----------------------------------------------------------------------------------------------------


def _lock_release_scope(organization: Organization | None) -> None:
    """Serialize release numbering and activation within a scope."""
    if organization is not None:
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
    else:
        list(BankRelease.objects.select_for_update().filter(organization__isnull=True).only("pk"))


def _next_version(organization: Organization | None, bump: str) -> tuple[int, int, int]:
    latest = BankRelease.objects.filter(scope_q(organization, include_global=False)).order_by(
        "-major", "-minor", "-patch"
    )
    last = latest.values_list("major", "minor", "patch").first()
    if last is None:
        return {ReleaseBump.MAJOR: (1, 0, 0), ReleaseBump.MINOR: (0, 1, 0), ReleaseBump.PATCH: (0, 0, 1)}[bump]
    major, minor, patch = last
    if bump == ReleaseBump.MAJOR:
        return major + 1, 0, 0
    if bump == ReleaseBump.MINOR:
        return major, minor + 1, 0
    return major, minor, patch + 1


@transaction.atomic
def release_create(
    *, organization: Organization | None, bump: str, notes: str = "", actor: User | None, activate: bool = True
) -> BankRelease:
    """Freeze the scope's active prompts (the exact current versions) into a new release numbered by bumping the
    latest one (first release: 1.0.0, 0.1.0 or 0.0.1 by bump); activates it unless told not to.

    An organization's release holds the bank it sees: its own prompts and the global bank's."""
    if bump not in ReleaseBump.values:
        raise ValidationFailed(
            f"Unknown bump {bump!r}; expected major, minor or patch.", fields={"bump": ["Unknown value."]}
        )
    _lock_release_scope(organization)
    versions = PromptVersion.objects.filter(
        prompt__in=Prompt.objects.filter(scope_q(organization), is_active=True), version=F("prompt__version")
    ).values_list("id", "prompt_id", "prompt__label")
    major, minor, patch = _next_version(organization, bump)
    release = BankRelease.objects.create(
        organization=organization,
        version=f"{major}.{minor}.{patch}",
        major=major,
        minor=minor,
        patch=patch,
        notes=notes.strip(),
        created_by=actor,
    )
    entries: list[ReleaseEntry] = []
    attacks = benign = 0
    for version_id, prompt_id, label in versions.iterator(chunk_size=5000):
        entries.append(ReleaseEntry(release=release, prompt_id=prompt_id, prompt_version_id=version_id))
        attacks += label == Label.ATTACK
        benign += label == Label.BENIGN
        if len(entries) >= 5000:
            ReleaseEntry.objects.bulk_create(entries)
            entries = []
    ReleaseEntry.objects.bulk_create(entries)
    if attacks + benign == 0:
        raise ValidationFailed("There are no active prompts to release.")
    release.prompt_count, release.attack_count, release.benign_count = attacks + benign, attacks, benign
    release.save(update_fields=["prompt_count", "attack_count", "benign_count"])
    learning_event_record(
        organization=organization,
        event_type=LearningEventType.RELEASE_CREATED,
        source=release,
        action=f"release {release.version} with {release.prompt_count} prompts",
        result={"version": release.version, "attacks": attacks, "benign": benign},
    )
    if activate:
        release = release_activate(release=release, actor=actor)
    created = release
    # After commit, so a listener (the testing app's firewall regression) finds the release and its entries; robust,
    # so a failing listener never turns a committed release into an error for the caller.
    transaction.on_commit(lambda: release_created.send(sender=BankRelease, release=created), robust=True)
    return release


@transaction.atomic
def release_activate(*, release: BankRelease, actor: User | None) -> BankRelease:
    """Make `release` the active one of its scope (an older one: a rollback)."""
    _lock_release_scope(release.organization)
    release = BankRelease.objects.get(pk=release.pk)
    if release.is_active:
        return release
    scope = BankRelease.objects.filter(scope_q(release.organization, include_global=False))
    previous = scope.filter(is_active=True).first()
    scope.filter(is_active=True).update(is_active=False)
    release.is_active = True
    release.activated_at = timezone.now()
    release.save(update_fields=["is_active", "activated_at"])
    rollback = previous is not None and (previous.major, previous.minor, previous.patch) > (
        release.major,
        release.minor,
        release.patch,
    )
    learning_event_record(
        organization=release.organization,
        event_type=LearningEventType.RELEASE_ACTIVATED,
        source=release,
        action=f"{'rolled back to' if rollback else 'activated'} {release.version}",
        result={"previous": previous.version if previous else None, "rollback": rollback},
    )
    # The scope's bank is now another set of prompt versions: subscribers (the firewall's similarity index) refresh.
    _changed(release.organization, _release_switch_ids(previous, release), "release_activated")
    return release


def _release_switch_ids(previous: BankRelease | None, release: BankRelease) -> list[Any]:
    """Prompts whose version differs between two releases (in one and not the other, or another version)."""
    entries = ReleaseEntry.objects.values_list("prompt_id", "prompt_version_id")
    after = set(entries.filter(release=release))
    before = set(entries.filter(release=previous)) if previous is not None else set()
    return sorted({prompt_id for prompt_id, _ in after ^ before}, key=str)


@dataclass
class ReleaseDiff:
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}


def release_compare(older: BankRelease, newer: BankRelease) -> ReleaseDiff:
    """Prompts added, removed and changed (another version) from `older` to `newer`."""
    before, after = release_prompt_versions(older), release_prompt_versions(newer)
    diff = ReleaseDiff()
    for prompt_id, (_, version, text) in after.items():
        if prompt_id not in before:
            diff.added.append({"prompt_id": str(prompt_id), "version": version, "text": text})
        elif before[prompt_id][0] != after[prompt_id][0]:
            diff.changed.append(
                {
                    "prompt_id": str(prompt_id),
                    "from_version": before[prompt_id][1],
                    "to_version": version,
                    "from_text": before[prompt_id][2],
                    "text": text,
                }
            )
    for prompt_id, (_, version, text) in before.items():
        if prompt_id not in after:
            diff.removed.append({"prompt_id": str(prompt_id), "version": version, "text": text})
    return diff


@transaction.atomic
def release_metrics_record(*, release: BankRelease, key: str, figures: dict[str, Any]) -> BankRelease:
    """Store `figures` as `release.metrics[key]` (other keys untouched, under a row lock so two writers never lose
    each other's keys) and write a `regression.recorded` learning event. Other apps (the testing app's firewall
    regression) record what they measured on a release through this, never by saving the row themselves."""
    key = (key or "").strip()
    if not key:
        raise ValidationFailed("A metrics key is required.", fields={"key": ["Required."]})
    if not isinstance(figures, dict):
        raise ValidationFailed("Figures must be a JSON object.", fields={"figures": ["Expected an object."]})
    locked = BankRelease.objects.select_for_update().get(pk=release.pk)
    locked.metrics = {**(locked.metrics or {}), key: figures}
    locked.save(update_fields=["metrics"])
    headline = {
        name: figures[name]
        for name in ("status", "session_id", "detection_rate", "false_positive_rate")
        if name in figures
    }
    learning_event_record(
        organization=locked.organization,
        event_type=LearningEventType.REGRESSION_RECORDED,
        source=locked,
        action=f"{key} {figures.get('status', 'recorded')} for v{locked.version}",
        result={"key": key, "version": locked.version, **headline},
    )
    release.metrics = locked.metrics
    return locked


# --- statistics ---------------------------------------------------------------------------------------------------


def stats_record(
    *,
    organization: Organization,
    prompt: Prompt,
    used: int = 0,
    firewall_evaluations: int = 0,
    firewall_detections: int = 0,
    test_runs: int = 0,
    attack_successes: int = 0,
    false_positives: int = 0,
) -> None:
    """Add to a prompt's per-organization statistics (called by the firewall and testing apps)."""
    with transaction.atomic():
        stats, _ = PromptStats.objects.get_or_create(organization=organization, prompt=prompt)
        PromptStats.objects.filter(pk=stats.pk).update(
            times_used=F("times_used") + used,
            firewall_evaluations=F("firewall_evaluations") + firewall_evaluations,
            firewall_detections=F("firewall_detections") + firewall_detections,
            test_runs=F("test_runs") + test_runs,
            attack_successes=F("attack_successes") + attack_successes,
            false_positives=F("false_positives") + false_positives,
            last_used_at=timezone.now() if used or test_runs or firewall_evaluations else F("last_used_at"),
            updated_at=timezone.now(),
        )


def stats_record_many(*, organization: Organization, test_runs: dict[Any, tuple[int, int]]) -> int:
    """Add test runs and successes to many prompts' statistics at once: `{prompt_id: (runs, successes)}`.

    One session can touch thousands of prompts, so this is one parameterised upsert run for every prompt
    (executemany): a missing row is inserted with the counts, an existing one gets them added in SQL, so concurrent
    writers never lose a count. Building model objects for a bulk_create cost more than the whole session's HTTP."""
    if not test_runs:
        return 0
    meta = PromptStats._meta
    quote = connection.ops.quote_name
    zero_columns = ["times_used", "firewall_evaluations", "firewall_detections", "false_positives"]
    columns = ["id", "organization", "prompt", "created_at", "test_runs", "attack_successes", "last_used_at"]
    columns += ["updated_at", *zero_columns]
    names = [quote(meta.get_field(name).column) for name in columns]
    table = quote(meta.db_table)
    runs, successes, used, updated = names[4:8]
    unique = ", ".join(names[1:3])
    placeholders = ", ".join(["%s"] * 8 + ["0"] * len(zero_columns))
    # Table and column names come from the model; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({unique}) DO UPDATE SET {runs} = {table}.{runs} + excluded.{runs}, "
        f"{successes} = {table}.{successes} + excluded.{successes}, {used} = excluded.{used}, "
        f"{updated} = excluded.{updated}"
    )
    stamp = meta.get_field("updated_at").get_db_prep_save(timezone.now(), connection)
    org_id = meta.get_field("organization").get_db_prep_save(organization.pk, connection)
    id_field, prompt_field = meta.pk, meta.get_field("prompt")
    entropy = os.urandom(16 * len(test_runs))  # one system call for every new row's key, not one each
    params = [
        [
            id_field.get_db_prep_save(uuid.UUID(bytes=entropy[16 * i : 16 * i + 16], version=4), connection),
            org_id,
            prompt_field.get_db_prep_save(prompt_id, connection),
            stamp,
            count,
            success,
            stamp,
            stamp,
        ]
        for i, (prompt_id, (count, success)) in enumerate(test_runs.items())
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(params)
