"""Reads behind the overview page: key figures and chart series for one organization over one period.

Every function takes the organization and scopes to it, and aggregates in the database (grouped `Count`s over the
indexed `organization, created_at` columns, percentiles in SQL): a page costs a fixed number of queries whatever
the number of rows. Firewall traffic is read through `analytics.rollups`, which adds hourly and daily rollups to
the raw rows of the period's ragged edges, so long ranges stay fast and every count stays exact.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import Aggregate, Count, F, FloatField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models import Window as SqlWindow
from django.db.models.expressions import Combinable
from django.db.models.functions import Floor, RowNumber, Substr, TruncDay, TruncHour, TruncMinute

from analytics import rollups
from firewall.choices import Decision, Feedback
from firewall.models import Evaluation, ThreatPattern
from promptbank.selectors import visible_prompts
from testing.choices import SCORED_VERDICTS, ResultKind, SessionStatus, Verdict
from testing.models import TestResult, TestSession

if TYPE_CHECKING:
    from accounts.models import Organization

# Decisions in which the firewall acted on the text: what a false-positive report can be about.
ACTED = (Decision.BLOCKED, Decision.SANITIZED)
TOP_PATTERNS = 10
TOP_PROMPTS = 10
EFFECTIVE_SLACK = 40
MAX_TARGETS = 8
PROMPT_LABEL_CHARS = 60
LATENCY_FRACTIONS = (0.5, 0.95)
_BUCKETS = {"minute": (TruncMinute, timedelta(minutes=1)), "hour": (TruncHour, timedelta(hours=1))}
_BUCKETS["day"] = (TruncDay, timedelta(days=1))


@dataclass(frozen=True)
class Period:
    """A half-open time range [since, until) and the bucket its time series are counted in."""

    since: datetime
    until: datetime
    preset: str = "custom"

    def __post_init__(self) -> None:
        if self.since >= self.until:
            raise ValueError(
                f"A period must end after it starts ({self.since.isoformat()} → {self.until.isoformat()})."
            )

    @classmethod
    def ending(cls, until: datetime, span: timedelta, *, preset: str = "custom") -> Period:
        return cls(since=until - span, until=until, preset=preset)

    @property
    def span(self) -> timedelta:
        return self.until - self.since

    @property
    def bucket(self) -> str:
        """Minutes up to 3 hours, hours up to 8 days, days beyond: between about 24 and 200 points a series."""
        if self.span <= timedelta(hours=3):
            return "minute"
        if self.span <= timedelta(days=8):
            return "hour"
        return "day"

    @property
    def step(self) -> timedelta:
        return _BUCKETS[self.bucket][1]

    def truncate(self, field: str = "created_at") -> Combinable:
        """The SQL expression of a row's bucket start (in the current time zone, so days start at local midnight)."""
        return _BUCKETS[self.bucket][0](field)

    def bucket_bounds(self, start: datetime) -> tuple[datetime, datetime]:
        """A bucket's bounds clipped to the period, so a link to the rows of a bucket counts what its bar counts."""
        return max(start, self.since), min(start + self.step, self.until)


def _in_period(queryset: QuerySet, period: Period, field: str = "created_at") -> QuerySet:
    return queryset.filter(**{f"{field}__gte": period.since, f"{field}__lt": period.until})


def evaluations_in(organization: Organization, period: Period) -> QuerySet[Evaluation]:
    """The organization's evaluations of the period, unordered (ready for grouping)."""
    return _in_period(Evaluation.objects.for_org(organization), period).order_by()


# --- percentiles -------------------------------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY x)`: the linearly interpolated percentile."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"A percentile's fraction is between 0 and 1, got {fraction}.")
        super().__init__(expression, fraction=repr(fraction), **extra)  # a checked float: safe in the SQL text


def percentiles(
    queryset: QuerySet,
    field: str,
    fractions: Iterable[float] = LATENCY_FRACTIONS,
    *,
    group_by: Combinable | None = None,
    digits: int = 2,
) -> dict[Any, dict[float, float]]:
    """`{group: {fraction: value}}` of `field` over the queryset's non-null values, interpolated as PostgreSQL's
    `percentile_cont` does, in one query on every backend. Without `group_by` the only group is `None`; a group
    with no values is absent.

    PostgreSQL computes it natively. Elsewhere (SQLite) the rows are ranked per group by a window function and only
    the two rows around each wanted position come back, which is the ordered offset query of each group at once."""
    fractions = tuple(float(f) for f in fractions)
    for fraction in fractions:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"A percentile's fraction is between 0 and 1, got {fraction}.")
    rows = queryset.order_by().filter(**{f"{field}__isnull": False})
    if connections[rows.db].vendor == "postgresql":
        names = {f"p{index}": fraction for index, fraction in enumerate(fractions)}
        aggregates = {name: PercentileCont(field, fraction) for name, fraction in names.items()}
        if group_by is None:
            found = rows.aggregate(**aggregates)
            grouped = [(None, found)] if found and next(iter(found.values())) is not None else []
        else:
            grouped = [(row.pop("_group"), row) for row in rows.values(_group=group_by).annotate(**aggregates)]
        return {
            group: {fraction: round(values[name], digits) for name, fraction in names.items()}
            for group, values in grouped
        }
    return _ranked_percentiles(rows, field, fractions, group_by, digits)


def _ranked_percentiles(
    rows: QuerySet, field: str, fractions: tuple[float, ...], group_by: Combinable | None, digits: int
) -> dict[Any, dict[float, float]]:
    partition = [group_by] if group_by is not None else None
    ranked = rows.annotate(
        _group=group_by if group_by is not None else Value(0),
        _rank=SqlWindow(RowNumber(), partition_by=partition, order_by=F(field).asc()),
        _size=SqlWindow(Count("pk"), partition_by=partition),
    )
    wanted = Q()
    for fraction in fractions:  # ranks are 1-based: the row at floor(f * (n - 1)) and the one after it
        lower = Floor((F("_size") - 1) * fraction) + 1
        wanted |= Q(_rank=lower) | Q(_rank=lower + 1)
    picked: dict[Any, dict[int, float]] = defaultdict(dict)
    sizes: dict[Any, int] = {}
    for found_group, rank, size, value in ranked.filter(wanted).values_list("_group", "_rank", "_size", field):
        group = found_group if group_by is not None else None
        picked[group][rank] = value
        sizes[group] = size
    result = {}
    for group, values in picked.items():
        result[group] = {}
        for fraction in fractions:
            position = fraction * (sizes[group] - 1)
            lower = math.floor(position)
            low = values[lower + 1]
            high = values.get(lower + 2, low)
            result[group][fraction] = round(low + (high - low) * (position - lower), digits)
    return result


# --- key figures --------------------------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    """None when the whole is empty: no traffic must never read as a 0% block rate."""
    return round(part / whole, 4) if whole else None


def latest_completed_session(organization: Organization) -> TestSession | None:
    return (
        TestSession.objects.for_org(organization)
        .filter(status=SessionStatus.COMPLETED)
        .select_related("target")
        .order_by("-created_at", "-pk")
        .first()
    )


def attack_success(session: TestSession) -> dict[str, Any]:
    """A session's attack success rate (errors and unscorable answers are not in the denominator)."""
    counts = session_breakdown([session], "kind").get(session.pk, {}).get(ResultKind.ATTACK, {})
    succeeded, scored = counts.get("succeeded", 0), counts.get("scored", 0)
    return {"succeeded": succeeded, "scored": scored, "rate": _rate(succeeded, scored)}


_SUMMARY_GROUPS = {"category": "by_category", "mutator": "by_mutator"}


def session_breakdown(sessions: list[TestSession], column: str) -> dict[Any, dict[str, dict[str, int]]]:
    """`{session_id: {value: {"succeeded", "scored"}}}` of the sessions' attack rows grouped by `column` (category,
    mutator, or kind for the totals).

    A completed session is read from its stored summary (`testing.stats.session_summary`, written when it finishes
    and again after every analyst override), so a page never re-counts a finished session's rows; the others are
    counted from their rows in one grouped query. A value with rows but nothing scored is there with scored 0."""
    if column not in (*_SUMMARY_GROUPS, "kind"):
        raise ValueError(f"Attack rows are broken down by category, mutator or kind, not {column!r}.")
    if len({session.organization_id for session in sessions}) > 1:
        raise ValueError("Sessions of one organization only: a chart never mixes tenants.")
    found: dict[Any, dict[str, dict[str, int]]] = {}
    counted = []
    for session in sessions:
        stored = _stored_breakdown(session, column)
        if stored is None:
            counted.append(session)
        else:
            found[session.pk] = stored
    if not counted:
        return found
    rows = (
        TestResult.objects.filter(
            organization_id=counted[0].organization_id,
            session__in=[session.pk for session in counted],
            kind=ResultKind.ATTACK,
        )
        .values("session_id", column)
        .annotate(
            succeeded=Count("pk", filter=Q(verdict=Verdict.SUCCEEDED)),
            scored=Count("pk", filter=Q(verdict__in=SCORED_VERDICTS)),
        )
        .order_by("session_id", column)
    )
    for row in rows:
        found.setdefault(row["session_id"], {})[row[column]] = {"succeeded": row["succeeded"], "scored": row["scored"]}
    return found


def _stored_breakdown(session: TestSession, column: str) -> dict[str, dict[str, int]] | None:
    summary = session.summary if session.status == SessionStatus.COMPLETED else None
    if not isinstance(summary, dict) or "scored" not in summary:
        return None
    if column == "kind":
        return {ResultKind.ATTACK: {"succeeded": int(summary.get("succeeded") or 0), "scored": int(summary["scored"])}}
    groups = summary.get(_SUMMARY_GROUPS[column])
    if not isinstance(groups, dict):
        return None
    return {
        value: {"succeeded": int(block.get("succeeded") or 0), "scored": int(block.get("scored") or 0)}
        for value, block in groups.items()
        if isinstance(block, dict) and block.get("total", 1)
    }


def overview_kpis(organization: Organization, period: Period) -> dict[str, Any]:
    """The overview's key figures. Firewall and session figures cover the period; the attack success rate is the
    latest completed session's (whenever it ran) and the bank size is the bank as it is now."""
    by_decision = {
        row["decision"]: row["count"] for row in rollups.evaluation_counts(organization, period, group_by=["decision"])
    }
    counts = {
        "evaluations": sum(by_decision.values()),
        "blocked": by_decision.get(Decision.BLOCKED, 0),
        "acted": sum(by_decision.get(decision, 0) for decision in ACTED),
        # Feedback arrives after the fact, so it is never rolled up: a raw count over a small partial index.
        "false_positives": evaluations_in(organization, period)
        .filter(decision__in=ACTED, feedback=Feedback.FALSE_POSITIVE)
        .count(),
    }
    latency = rollups.latency_percentiles(organization, period, LATENCY_FRACTIONS).get(None, {})
    session = latest_completed_session(organization)
    return {
        **counts,
        "block_rate": _rate(counts["blocked"], counts["evaluations"]),
        "false_positive_rate": _rate(counts["false_positives"], counts["acted"]),
        "latency_p50": latency.get(0.5),
        "latency_p95": latency.get(0.95),
        "sessions": _in_period(TestSession.objects.for_org(organization), period).count(),
        "latest_session": session,
        "latest_attack_success": attack_success(session) if session else None,
        "bank_size": visible_prompts(organization).filter(is_active=True).count(),
    }


# --- series -------------------------------------------------------------------------------------------------------


def evaluations_by_decision(organization: Organization, period: Period) -> list[dict[str, Any]]:
    """`[{"bucket", "decision", "count"}]` in time order: one row per bucket and decision that has evaluations."""
    rows = rollups.evaluation_counts(organization, period, group_by=["decision"], by_bucket=True)
    return [{"bucket": row["bucket"], "decision": row["decision"], "count": row["count"]} for row in rows]


def threats_by_type_and_severity(organization: Organization, period: Period) -> list[dict[str, Any]]:
    """`[{"threat_type", "severity", "count"}]` of evaluations that found a threat (threat type other than none)."""
    rows = rollups.evaluation_counts(organization, period, group_by=["threat_type", "severity"])
    return [
        {"threat_type": row["threat_type"], "severity": row["severity"], "count": row["count"]}
        for row in rows
        if row["threat_type"] != "none"
    ]


def latency_by_bucket(organization: Organization, period: Period) -> list[dict[str, Any]]:
    """`[{"bucket", "p50", "p95"}]` in time order, for buckets with evaluations (milliseconds)."""
    found = rollups.latency_percentiles(organization, period, LATENCY_FRACTIONS, by_bucket=True)
    return [{"bucket": bucket, "p50": values[0.5], "p95": values[0.95]} for bucket, values in sorted(found.items())]


def latest_sessions_per_target(organization: Organization, limit: int = MAX_TARGETS) -> list[TestSession]:
    """The latest completed session of each target (of the `limit` targets tested most recently), by target name."""
    completed = TestSession.objects.for_org(organization).filter(status=SessionStatus.COMPLETED, target__isnull=False)
    newest = completed.filter(target=OuterRef("target")).order_by("-created_at", "-pk").values("pk")[:1]
    sessions = list(completed.filter(pk=Subquery(newest)).select_related("target").order_by("-created_at")[:limit])
    return sorted(sessions, key=lambda session: (session.target.name.casefold(), str(session.pk)))


def attack_success_by_category(sessions: list[TestSession]) -> dict[Any, dict[str, dict[str, Any]]]:
    """`{session_id: {category: {"succeeded", "scored", "rate"}}}` over the sessions' attack results."""
    return {
        session_id: {
            category: {**counts, "rate": _rate(counts["succeeded"], counts["scored"])}
            for category, counts in categories.items()
        }
        for session_id, categories in session_breakdown(sessions, "category").items()
    }


def top_threat_patterns(organization: Organization, period: Period, limit: int = TOP_PATTERNS) -> list[dict[str, Any]]:
    """The attacks blocked most often in the period, known by their text hash (the threat pattern's key): the
    organization's own count, and how many organizations have seen the same pattern. Never any text."""
    rows = rollups.blocked_patterns(organization, period, limit)
    shared = dict(
        ThreatPattern.objects.filter(pattern_hash__in=[row["text_hash"] for row in rows]).values_list(
            "pattern_hash", "organizations_affected"
        )
    )
    for row in rows:
        row["organizations_affected"] = shared.get(row["text_hash"])
    return rows


def effective_prompts(organization: Organization, period: Period, limit: int = TOP_PROMPTS) -> list[dict[str, Any]]:
    """The bank prompts that succeeded most often in the organization's tests completed in the period (ties: the
    one tried fewer times first), with a short label from the prompt as the organization can see it.

    Two small queries instead of one over every result of the period: the successes are counted on the partial index
    of succeeded results, then the scored attempts only for the front-runners (`EFFECTIVE_SLACK` more than shown,
    so a tie at the cut is still ordered by attempts)."""
    done = _in_period(TestResult.objects.filter(organization=organization), period, "completed_at").filter(
        kind=ResultKind.ATTACK, prompt__isnull=False
    )
    leaders = dict(
        done.filter(verdict=Verdict.SUCCEEDED)
        .order_by()
        .values("prompt_id")
        .annotate(succeeded=Count("prompt"))  # not the key: the partial index answers it without the table
        .order_by("-succeeded", "prompt_id")
        .values_list("prompt_id", "succeeded")[: limit + EFFECTIVE_SLACK]
    )
    scored = dict(
        done.filter(prompt__in=list(leaders), verdict__in=SCORED_VERDICTS)
        .order_by()
        .values("prompt_id")
        .annotate(scored=Count("pk"))
        .values_list("prompt_id", "scored")
    )
    rows = sorted(
        ({"prompt_id": pk, "succeeded": count, "scored": scored.get(pk, count)} for pk, count in leaders.items()),
        key=lambda row: (-row["succeeded"], row["scored"], str(row["prompt_id"])),
    )[:limit]
    labels = {
        pk: (text, category)
        for pk, text, category in visible_prompts(organization)
        .filter(pk__in=[row["prompt_id"] for row in rows])
        .values_list("pk", Substr("text", 1, PROMPT_LABEL_CHARS), "category")
    }
    found = []
    for row in rows:
        if row["prompt_id"] not in labels:  # a prompt this organization cannot see (never expected): left out
            continue
        text, category = labels[row["prompt_id"]]
        found.append({**row, "text": text, "category": category, "rate": _rate(row["succeeded"], row["scored"])})
    return found
