"""The bank's side of the learning loop: each organization's learning policy, accepting what it opted into, and
clustering candidate prompts (blocked inputs, false-negative reports) into one pending submission per cluster.

Other apps call these services (the dependency arrow points up: the firewall and testing import the bank, never the
other way round). Clustering for one organization is serialized on its `LearningPolicy` row, so a harvest pass and
a feedback report arriving at the same time cannot both create a candidate for the same cluster.

Clustering a batch of sightings (texts seen with a time and, for the firewall, an evaluation id):

1. texts already in the bank the organization sees (its own prompts and the global bank) are skipped and counted;
2. the rest are grouped by exact normalized hash (the pipeline's duplicate key);
3. each group joins the pending submission with the same hash, else the most similar pending candidate of the same
   source and label (MinHash/LSH candidates, verified with `minhash.similarity` at `LEARNING_CLUSTER_THRESHOLD`),
   else becomes a new pending submission; `occurrences` counts every sighting, `metadata` keeps the first and last
   time seen and a sample of at most five evaluation ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from accounts.choices import AuditAction
from accounts.models import ApiKey, Organization, User
from accounts.services import audit_log_write
from evalence.errors import ApplicationError, ValidationFailed
from promptbank.choices import Label, SubmissionStatus
from promptbank.models import LearningPolicy, Submission
from promptbank.pipeline import minhash
from promptbank.pipeline.dedup import VERIFY_FLOOR, VERIFY_TOP, existing_prompts
from promptbank.pipeline.normalize import normalize_text
from promptbank.pipeline.validate import MAX_TEXT_CHARS
from promptbank.services import submission_accept, submission_create

logger = logging.getLogger("evalence.promptbank")

# Where the loop's submissions come from: red-team findings, and blocked inputs and feedback of the firewall.
LOOP_SOURCES = ("testing", "firewall")

# --- the policy ---------------------------------------------------------------------------------------------------

POLICY_FIELDS = ("auto_accept_findings", "auto_accept_false_positives", "harvest_blocked", "harvest_min_confidence")
BOOLEAN_FIELDS = ("auto_accept_findings", "auto_accept_false_positives", "harvest_blocked")

AUTO_ACCEPT_REASONS = {
    "auto_accept_findings": "auto-accepted: the organization accepts red-team findings",
    "auto_accept_false_positives": "auto-accepted: the organization accepts false-positive reports",
}


def learning_policy_for(organization: Organization) -> LearningPolicy:
    """The organization's learning policy, created with the defaults on first use."""
    policy, _ = LearningPolicy.objects.get_or_create(organization=organization)
    return policy


def learning_policy_lock(organization: Organization) -> LearningPolicy:
    """The policy row, locked until the transaction ends: serializes harvest passes and clustering per organization."""
    learning_policy_for(organization)
    return LearningPolicy.objects.select_for_update().get(organization=organization)


def _policy_errors(changes: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for name in sorted(set(changes) - set(POLICY_FIELDS)):
        errors[name] = ["Unknown field."]
    for name in BOOLEAN_FIELDS:
        if name in changes and not isinstance(changes[name], bool):
            errors[name] = ["Must be true or false."]
    if "harvest_min_confidence" in changes:
        value = changes["harvest_min_confidence"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors["harvest_min_confidence"] = ["Must be a number from 0 to 1."]
        elif not 0.0 <= float(value) <= 1.0:
            errors["harvest_min_confidence"] = [f"Must be from 0 to 1, not {value}."]
    return errors


@transaction.atomic
def learning_policy_update(
    *, organization: Organization, changes: dict[str, Any], actor: User | None, ip: str | None = None
) -> LearningPolicy:
    """Change some of the policy's switches (admins; every change audited like the firewall policy). Values are
    type-checked, not coerced: "yes" is not a boolean. Nothing is written when nothing changes."""
    errors = _policy_errors(changes)
    if errors:
        raise ValidationFailed(
            "The learning policy was not changed: " + "; ".join(f"{k}: {v[0]}" for k, v in errors.items()),
            fields=errors,
        )
    policy = learning_policy_lock(organization)
    diff: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "harvest_min_confidence":
            value = float(value)
        if getattr(policy, name) != value:
            diff[name] = {"from": getattr(policy, name), "to": value}
            setattr(policy, name, value)
    if not diff:
        return policy
    policy.save()
    audit_log_write(
        organization=organization,
        action=AuditAction.LEARNING_POLICY_CHANGED,
        actor=actor,
        target=policy,
        target_label="learning policy",
        ip=ip,
        data={"changes": diff},
    )
    return policy


@transaction.atomic
def learning_policy_advance(*, organization: Organization, until: datetime) -> LearningPolicy:
    """Move the harvest cursor forward (never back); call inside the transaction that wrote the harvested rows."""
    policy = learning_policy_lock(organization)
    if policy.harvested_until is None or until > policy.harvested_until:
        policy.harvested_until = until
        policy.save(update_fields=["harvested_until", "updated_at"])
    return policy


# --- accepting what the organization opted into ------------------------------------------------------------------


def submission_accept_if_opted_in(*, submission: Submission, switch: str) -> bool:
    """Accept a pending submission at once (no reviewer) when the organization's policy has `switch` on; True when
    it was accepted. A text the pipeline refuses stays pending for a curator (logged, not raised)."""
    if switch not in AUTO_ACCEPT_REASONS:
        raise ValueError(f"unknown switch {switch!r}")
    if submission.status != SubmissionStatus.PENDING:
        return False
    if not getattr(learning_policy_for(submission.organization), switch):
        return False
    try:
        with transaction.atomic():
            submission_accept(submission=submission, reviewer=None, reason=AUTO_ACCEPT_REASONS[switch])
    except ApplicationError as exc:
        logger.info("submission %s not auto-accepted: %s", submission.pk, exc.message)
        return False
    submission.refresh_from_db()
    return True


# --- clustering candidates ----------------------------------------------------------------------------------------

EVALUATION_SAMPLE = 5
# Near-duplicate clustering compares with at most this many of the organization's newest pending candidates.
POOL_LIMIT = 5000


@dataclass
class Sighting:
    """One time a candidate text was seen (a blocked input, a false-negative report)."""

    text: str
    seen_at: datetime
    evaluation_id: str = ""
    category: str = ""
    severity: str = ""


@dataclass
class ClusterResult:
    """What `candidates_cluster` did with a batch of sightings."""

    received: int = 0
    in_bank: int = 0
    rejected: int = 0
    new_candidates: int = 0
    added_to_candidates: int = 0  # sightings counted onto pending candidates that already existed
    submissions: list[Submission] = field(default_factory=list)  # touched, in the order of the sightings' groups
    by_text: dict[int, Submission] = field(default_factory=dict)  # sighting index → its submission (not skipped)

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "in_bank": self.in_bank,
            "rejected": self.rejected,
            "new_candidates": self.new_candidates,
            "added_to_candidates": self.added_to_candidates,
        }


@dataclass
class _Group:
    digest: str
    folded: str
    indexes: list[int]
    sightings: list[Sighting]


def _iso(value: datetime) -> str:
    return value.isoformat()


def _merge_metadata(metadata: dict[str, Any], sightings: list[Sighting]) -> dict[str, Any]:
    merged = dict(metadata or {})
    times = [s.seen_at for s in sightings]
    first, last = _iso(min(times)), _iso(max(times))
    # ISO 8601 strings of aware datetimes in one time zone compare in time order.
    merged["first_seen"] = min(filter(None, (merged.get("first_seen"), first)))
    merged["last_seen"] = max(filter(None, (merged.get("last_seen"), last)))
    sample = list(merged.get("evaluation_ids") or [])
    for sighting in sightings:
        if sighting.evaluation_id and sighting.evaluation_id not in sample and len(sample) < EVALUATION_SAMPLE:
            sample.append(sighting.evaluation_id)
    merged["evaluation_ids"] = sample
    return merged


class _Pool:
    """The organization's pending candidates a group may join: by exact hash, and by MinHash near-duplicate."""

    def __init__(self, organization: Organization, source: str, label: str) -> None:
        # Any pending submission with the same text counts a sighting (as `submission_create` would); only candidates
        # of the same source and label gather near duplicates.
        pending = Submission.objects.for_org(organization).filter(status=SubmissionStatus.PENDING)
        self.by_hash: dict[str, Submission] = {}
        for row in pending.select_for_update().order_by("created_at").exclude(normalized_hash=""):
            self.by_hash.setdefault(row.normalized_hash, row)
        self.index = minhash.LSHIndex()
        self.texts: dict[Any, str] = {}
        self.rows: dict[Any, Submission] = {}
        similar = [row for row in self.by_hash.values() if (row.source, row.label) == (source, label)]
        similar = similar[-POOL_LIMIT:]
        self._add(similar, [normalize_text(row.text).normalized.casefold() for row in similar])

    def _add(self, rows: list[Submission], folded: list[str]) -> None:
        if not rows:
            return
        self.index.add([row.pk for row in rows], minhash.signatures(folded))
        for row, text in zip(rows, folded, strict=True):
            self.texts[row.pk] = text
            self.rows[row.pk] = row

    def add(self, row: Submission, folded: str) -> None:
        self.by_hash.setdefault(row.normalized_hash, row)
        self._add([row], [folded])

    def match(self, group: _Group, threshold: float) -> Submission | None:
        exact = self.by_hash.get(group.digest)
        if exact is not None:
            return exact
        if not len(self.index):
            return None
        [found] = self.index.query(minhash.signatures([group.folded]), min_estimate=VERIFY_FLOOR, limit=VERIFY_TOP)
        best, best_key = 0.0, None
        for position, _estimate in found:
            key = self.index.key(position)
            value = minhash.similarity(group.folded, self.texts[key])
            if value > best:
                best, best_key = value, key
        return self.rows[best_key] if best_key is not None and best >= threshold else None


@transaction.atomic
def candidates_cluster(
    *,
    organization: Organization,
    sightings: Iterable[Sighting],
    source: str = "firewall",
    label: str = Label.ATTACK,
    notes: str = "",
    metadata: dict[str, Any] | None = None,
    submitter: User | None = None,
    submitter_key: ApiKey | None = None,
) -> ClusterResult:
    """File sightings of candidate prompts as pending submissions, one per cluster (see the module docstring).
    `metadata`, `notes` and the submitter go to a newly created candidate only."""
    sightings = list(sightings)
    result = ClusterResult(received=len(sightings))
    learning_policy_lock(organization)  # one clustering writer per organization at a time
    groups: dict[str, _Group] = {}
    for i, sighting in enumerate(sightings):
        text = (sighting.text or "").replace("\x00", "").strip()
        if not text or len(text) > MAX_TEXT_CHARS:
            result.rejected += 1
            continue
        sighting.text = text
        normalized = normalize_text(text)
        group = groups.get(normalized.hash)
        if group is None:
            group = groups[normalized.hash] = _Group(normalized.hash, normalized.normalized.casefold(), [], [])
        group.indexes.append(i)
        group.sightings.append(sighting)
    known = existing_prompts(organization, groups)
    for digest in known:
        result.in_bank += len(groups.pop(digest).sightings)
    if not groups:
        return result
    threshold = float(settings.LEARNING_CLUSTER_THRESHOLD)
    pool = _Pool(organization, source, label)
    updates: dict[Any, tuple[Submission, list[Sighting]]] = {}
    created: set[Any] = set()
    for group in groups.values():
        target = pool.match(group, threshold)
        if target is None:
            first = group.sightings[0]
            target = submission_create(
                organization=organization,
                text=first.text,
                label=label,
                category=first.category,
                severity=first.severity,
                source=source,
                source_ref=f"evaluation:{first.evaluation_id}" if first.evaluation_id else "",
                notes=notes,
                metadata=metadata,
                submitter=submitter,
                submitter_key=submitter_key,
            )
            created.add(target.pk)
            pool.add(target, group.folded)
            result.new_candidates += 1
        elif target.pk not in created:
            result.added_to_candidates += len(group.sightings)
        _, seen = updates.setdefault(target.pk, (target, []))
        seen.extend(group.sightings)
        for i in group.indexes:
            result.by_text[i] = target
    for target, seen in updates.values():
        # A new candidate was stored with one occurrence: it gets the cluster's size; an older one adds to its count.
        occurrences = len(seen) if target.pk in created else F("occurrences") + len(seen)
        Submission.objects.filter(pk=target.pk).update(
            occurrences=occurrences, metadata=_merge_metadata(target.metadata, seen)
        )
        target.refresh_from_db(fields=["occurrences", "metadata"])
        result.submissions.append(target)
    return result
