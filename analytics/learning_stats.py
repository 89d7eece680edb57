"""The learning page's figures for one organization and period, aggregated in SQL (read-only over the other apps).

The loop as counts, each stage a subset of the one before it where the data allows:

1. **Findings**: what the loop picked up in the period — learning events of the organization of the types
   `finding.recorded` (a successful red-team attack offered to the bank), `blocked_input.recorded` (a blocked input
   harvested as a candidate) and `feedback.recorded` (a false-negative or false-positive report).
2. **Submissions**: bank submissions the loop made in the period (`source` "testing" or "firewall": findings and
   blocked traffic on their way into the bank). Submissions people or integrations made by hand are counted apart
   (`other_submissions`): they are not part of the loop.
3. **Accepted**: those submissions that were accepted into the bank (by a curator or by the learning policy).
4. **Detected**: those accepted ones whose prompt the firewall later stopped in a test — a result of the
   organization's test sessions with that prompt and the verdict `blocked`, completed at or after the acceptance
   (the regression run of a bank release against the firewall target, or any session against a target behind it).

Only the organization's own rows count (global learning events, e.g. a retrain of the shared classifier, are not
the organization's loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Exists, F, OuterRef, Q

from analytics.selectors import Period
from promptbank.choices import LearningEventType, SubmissionStatus
from promptbank.learning import LOOP_SOURCES
from promptbank.models import LearningEvent, Submission
from testing.choices import Verdict
from testing.models import TestResult

if TYPE_CHECKING:
    from accounts.models import Organization

FINDING_TYPES = (
    LearningEventType.FINDING_RECORDED,
    LearningEventType.BLOCKED_INPUT_RECORDED,
    LearningEventType.FEEDBACK_RECORDED,
)
TIMELINE_SHOWN = 50


@dataclass
class LearningStats:
    findings: int = 0
    submissions: int = 0
    accepted: int = 0
    detected: int = 0
    other_submissions: int = 0
    events: int = 0
    events_by_type: list[dict[str, Any]] = field(default_factory=list)  # [{"bucket", "event_type", "count"}]
    latest: list[LearningEvent] = field(default_factory=list)

    @property
    def funnel(self) -> list[tuple[str, str, int]]:
        """(key, label, count) of the loop's stages, in order."""
        return [
            ("findings", "Findings", self.findings),
            ("submissions", "Submissions", self.submissions),
            ("accepted", "Accepted", self.accepted),
            ("detected", "Detected by the firewall", self.detected),
        ]


def _in(period: Period) -> Q:
    return Q(created_at__gte=period.since, created_at__lt=period.until)


def learning_stats(organization: Organization, period: Period) -> LearningStats:
    """Every figure of the learning page: four aggregate queries and the latest events."""
    events = LearningEvent.objects.for_org(organization).filter(_in(period))
    event_counts = events.order_by().aggregate(
        events=Count("pk"), findings=Count("pk", filter=Q(event_type__in=FINDING_TYPES))
    )
    blocked_later = TestResult.objects.for_org(organization).filter(
        prompt_id=OuterRef("prompt_id"), verdict=Verdict.BLOCKED, completed_at__gte=OuterRef("reviewed_at")
    )
    loop = Q(source__in=LOOP_SOURCES)
    accepted = loop & Q(status=SubmissionStatus.ACCEPTED, prompt__isnull=False)
    submissions = (
        Submission.objects.for_org(organization)
        .filter(_in(period))
        .order_by()
        .aggregate(
            submissions=Count("pk", filter=loop),
            other=Count("pk", filter=~loop),
            accepted=Count("pk", filter=accepted),
            detected=Count("pk", filter=accepted & Q(Exists(blocked_later))),
        )
    )
    by_type = list(
        events.order_by()
        .annotate(bucket=period.truncate())
        .values("bucket", "event_type")
        .annotate(count=Count("pk"))
        .order_by("bucket", "event_type")
    )
    # The prompt's scope only (its text is not shown here), for the timeline's link to it.
    latest = list(
        events.annotate(prompt_organization_id=F("prompt__organization_id")).order_by("-created_at", "-pk")[
            :TIMELINE_SHOWN
        ]
    )
    return LearningStats(
        findings=event_counts["findings"],
        submissions=submissions["submissions"],
        accepted=submissions["accepted"],
        detected=submissions["detected"],
        other_submissions=submissions["other"],
        events=event_counts["events"],
        events_by_type=by_type,
        latest=latest,
    )
