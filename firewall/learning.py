"""The firewall's side of the learning loop: blocked inputs and feedback flow into the prompt bank.

- `blocked_inputs_harvest(organization)` is one harvest pass: the organization's blocked inputs of attack threat types
  with confidence at or above its `LearningPolicy.harvest_min_confidence`, newer than the policy's cursor
  (`harvested_until`), read in keyset batches of `LEARNING_HARVEST_BATCH` and clustered by the bank
  (`promptbank.learning.candidates_cluster`) into pending `source="firewall"` candidates. Each batch's writes, its
  learning event and the cursor's advance commit together, so a pass that dies half-way resumes where it stopped and
  never counts an input twice. The pass stops `LEARNING_HARVEST_LAG_S` seconds short of now: an evaluation stamped
  just before a pass may commit just after it.
- `feedback_to_bank(...)` is what feedback does in the bank: a false negative (or a confirmed block) is clustered like a
  blocked input; a false positive (or a confirmed allow) becomes a benign submission, accepted at once when the
  organization opted in, so the classifier learns from it at the next retrain.

Nothing here reads another organization's rows: evaluations come through `for_org`, candidates are the
organization's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Organization, User
from firewall.choices import Decision, Direction, Feedback
from firewall.engine.types import ThreatType
from firewall.models import Evaluation
from promptbank import learning as bank_learning
from promptbank.choices import Category, Label, LearningEventType
from promptbank.models import Submission
from promptbank.services import learning_event_record, submission_create

# The firewall's attack threat types → the bank category a harvested candidate gets. PII and secrets are not
# attacks on the model (they are redacted, not learned from), so they are never harvested.
THREAT_CATEGORY: dict[str, str] = {
    ThreatType.PROMPT_INJECTION.value: Category.PROMPT_INJECTION.value,
    ThreatType.JAILBREAK.value: Category.JAILBREAK.value,
    ThreatType.DATA_EXTRACTION.value: Category.DATA_EXTRACTION.value,
    ThreatType.SYSTEM_PROMPT_LEAK.value: Category.SYSTEM_PROMPT_LEAK.value,
    ThreatType.ENCODING_OBFUSCATION.value: Category.ENCODING_OBFUSCATION.value,
}
# Evaluation severities are the engine's (none … critical); the bank has no "none".
BANK_SEVERITY = {"low": "low", "medium": "medium", "high": "high", "critical": "critical"}
# Blocks that say nothing about the text: everything is blocked during an emergency stop or a failed-closed outage.
NOT_ABOUT_THE_TEXT = ("emergency_stop", "fail_closed", "rate_limit")


@dataclass
class HarvestSummary:
    organization: str
    skipped: str = ""
    batches: int = 0
    read: int = 0
    in_bank: int = 0
    rejected: int = 0
    new_candidates: int = 0
    added_to_candidates: int = 0
    harvested_until: str | None = None
    submissions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        summary = {k: v for k, v in self.__dict__.items() if k != "submissions"}
        summary["submissions"] = len(self.submissions)
        return summary


def _harvestable(organization: Organization, min_confidence: float, until: datetime) -> Any:
    return (
        Evaluation.objects.for_org(organization)
        .filter(
            direction=Direction.INPUT,
            decision=Decision.BLOCKED,
            threat_type__in=list(THREAT_CATEGORY),
            confidence__gte=min_confidence,
            created_at__lte=until,
        )
        .exclude(decided_by__in=NOT_ABOUT_THE_TEXT)
    )


FIELDS = ("id", "text", "threat_type", "severity", "created_at")


def _next_batch(queryset: Any, cursor: datetime | None, size: int) -> list[tuple[Any, ...]]:
    """The next `size` rows after the cursor, oldest first, plus any more rows stamped with the last row's time, so a
    cursor at that time never leaves a row of it behind."""
    after = queryset if cursor is None else queryset.filter(created_at__gt=cursor)
    rows = list(after.order_by("created_at", "id").values_list(*FIELDS)[:size])
    if len(rows) == size:
        last = rows[-1][4]
        taken = [row[0] for row in rows if row[4] == last]
        rows += list(after.filter(created_at=last).exclude(id__in=taken).order_by("id").values_list(*FIELDS))
    return rows


def _sighting(row: tuple[Any, ...]) -> bank_learning.Sighting:
    pk, text, threat_type, severity, created_at = row
    return bank_learning.Sighting(
        text=text,
        seen_at=created_at,
        evaluation_id=str(pk),
        category=THREAT_CATEGORY.get(threat_type, ""),
        severity=BANK_SEVERITY.get(severity, ""),
    )


def blocked_inputs_harvest(
    *, organization: Organization, until: datetime | None = None, batch_size: int | None = None
) -> HarvestSummary:
    """One harvest pass for one organization (see the module docstring); returns what it did."""
    if until is None:
        until = timezone.now() - timedelta(seconds=float(settings.LEARNING_HARVEST_LAG_S))
    size = max(1, int(batch_size or settings.LEARNING_HARVEST_BATCH))
    summary = HarvestSummary(organization=organization.slug)
    while True:
        with transaction.atomic():
            policy = bank_learning.learning_policy_lock(organization)  # one pass per organization at a time
            if not policy.harvest_blocked:
                summary.skipped = "harvest_blocked is off"
                break
            queryset = _harvestable(organization, policy.harvest_min_confidence, until)
            rows = _next_batch(queryset, policy.harvested_until, size)
            if rows:
                clustered = bank_learning.candidates_cluster(
                    organization=organization, sightings=[_sighting(row) for row in rows], source="firewall"
                )
                summary.batches += 1
                summary.read += len(rows)
                summary.in_bank += clustered.in_bank
                summary.rejected += clustered.rejected
                summary.new_candidates += clustered.new_candidates
                summary.added_to_candidates += clustered.added_to_candidates
                summary.submissions.extend(str(s.pk) for s in clustered.submissions)
                learning_event_record(
                    organization=organization,
                    event_type=LearningEventType.BLOCKED_INPUT_RECORDED,
                    source_type="firewall.Evaluation",
                    source_id=str(rows[-1][0]),
                    action=f"harvested {len(rows)} blocked input{'s' if len(rows) != 1 else ''} "
                    f"into {len(clustered.submissions)} candidate(s)",
                    result={**clustered.counts(), "from": rows[0][4].isoformat(), "to": rows[-1][4].isoformat()},
                )
            done = len(rows) < size
            policy = bank_learning.learning_policy_advance(
                organization=organization, until=until if done else rows[-1][4]
            )
            summary.harvested_until = policy.harvested_until.isoformat() if policy.harvested_until else None
        if done:
            break
    return summary


def harvest_all(*, organization: Organization | None = None, until: datetime | None = None) -> list[HarvestSummary]:
    """A harvest pass for one organization, or for every organization in turn (the periodic job)."""
    organizations = [organization] if organization is not None else list(Organization.objects.order_by("slug"))
    return [blocked_inputs_harvest(organization=org, until=until) for org in organizations]


# --- feedback -----------------------------------------------------------------------------------------------------


@dataclass
class FeedbackOutcome:
    submission: Submission | None
    label: str
    counts: dict[str, int] = field(default_factory=dict)
    accepted: bool = False


def feedback_to_bank(
    *,
    evaluation: Evaluation,
    kind: str,
    note: str = "",
    actor: User | None = None,
    api_key: ApiKey | None = None,
) -> FeedbackOutcome:
    """Send a judged evaluation's text to the bank: attacks (false negatives, confirmed blocks) are clustered with the
    organization's pending candidates; benign texts (false positives, confirmed allows) become a benign submission,
    auto-accepted for a false positive when the organization opted in. Call inside the feedback's transaction."""
    blocked = evaluation.policy_decision in (Decision.BLOCKED, Decision.SANITIZED)
    attack = kind == Feedback.FALSE_NEGATIVE or (kind == Feedback.CORRECT and blocked)
    metadata = {
        "evaluation_id": str(evaluation.pk),
        "feedback": kind,
        "decision": evaluation.policy_decision,
        "threat_type": evaluation.threat_type,
        "confidence": evaluation.confidence,
    }
    if attack:
        sighting = bank_learning.Sighting(
            text=evaluation.text,
            seen_at=evaluation.created_at,
            evaluation_id=str(evaluation.pk),
            category=THREAT_CATEGORY.get(evaluation.threat_type, ""),
            severity=BANK_SEVERITY.get(evaluation.severity, ""),
        )
        clustered = bank_learning.candidates_cluster(
            organization=evaluation.organization,
            sightings=[sighting],
            source="firewall",
            label=Label.ATTACK,
            notes=note,
            metadata=metadata,
            submitter=actor,
            submitter_key=api_key,
        )
        return FeedbackOutcome(clustered.by_text.get(0), Label.ATTACK, clustered.counts())
    submission = submission_create(
        organization=evaluation.organization,
        text=evaluation.text,
        label=Label.BENIGN,
        category=Category.BENIGN,
        source="firewall",
        source_ref=f"evaluation:{evaluation.pk}",
        notes=note,
        metadata=metadata,
        submitter=actor,
        submitter_key=api_key,
    )
    accepted = kind == Feedback.FALSE_POSITIVE and bank_learning.submission_accept_if_opted_in(
        submission=submission, switch="auto_accept_false_positives"
    )
    return FeedbackOutcome(submission, Label.BENIGN, {"received": 1}, accepted)


__all__ = [
    "THREAT_CATEGORY",
    "FeedbackOutcome",
    "HarvestSummary",
    "blocked_inputs_harvest",
    "feedback_to_bank",
    "harvest_all",
]
