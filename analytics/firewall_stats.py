"""Reads behind the firewall analytics page: traffic per API key and per application, decisions and threats over
time, the deciding detectors, the most frequent blocked inputs and the false positives reported.

Counts come from `analytics.rollups.evaluation_counts` (rollups for the complete past, raw rows after them), so the
page stays fast on long ranges; only the two lists that need text or feedback read evaluations directly, grouped and
limited in SQL over their partial indexes (`fw_eval_org_blocked`, `fw_eval_org_feedback`). Every read is scoped to
the organization, and the page costs the same number of queries whatever the number of rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, Q
from django.db.models.functions import Substr

from accounts.models import ApiKey
from analytics import rollups
from analytics.selectors import Period, evaluations_in
from firewall.choices import Decision, Feedback

if TYPE_CHECKING:
    from accounts.models import Organization

ACTED = (Decision.BLOCKED, Decision.SANITIZED)
MAX_GROUPS = 15
TOP_BLOCKED = 10
LATEST_FALSE_POSITIVES = 10
TEXT_CHARS = 120


def _counts(
    organization: Organization, period: Period, dimensions: list[str], *, by_bucket: bool = False
) -> list[dict[str, Any]]:
    return rollups.evaluation_counts(organization, period, group_by=dimensions, by_bucket=by_bucket)


def _rate(part: int, whole: int) -> float | None:
    """None when the whole is empty: no traffic must never read as a 0% rate."""
    return round(part / whole, 4) if whole else None


def _preview(text: str, length: int) -> str:
    """The first `TEXT_CHARS` characters on one line, with an ellipsis when the text goes on."""
    flat = " ".join(text.split())
    return flat + "…" if length > TEXT_CHARS or len(flat) > TEXT_CHARS else flat


@dataclass
class FirewallStats:
    """Everything the page shows, read once for one organization and period."""

    evaluations: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    by_key: list[dict[str, Any]] = field(default_factory=list)
    more_keys: int = 0
    by_application: list[dict[str, Any]] = field(default_factory=list)
    more_applications: int = 0
    decisions_over_time: list[dict[str, Any]] = field(default_factory=list)
    threats_over_time: list[dict[str, Any]] = field(default_factory=list)
    detectors: list[dict[str, Any]] = field(default_factory=list)
    detectors_over_time: list[dict[str, Any]] = field(default_factory=list)
    top_blocked: list[dict[str, Any]] = field(default_factory=list)
    false_positives: dict[str, Any] = field(default_factory=dict)

    @property
    def blocked(self) -> int:
        return self.decisions.get(Decision.BLOCKED, 0)

    @property
    def acted(self) -> int:
        return sum(self.decisions.get(decision, 0) for decision in ACTED)

    @property
    def block_rate(self) -> float | None:
        return _rate(self.blocked, self.evaluations)


# --- per API key and per application ------------------------------------------------------------------------------


def _groups(rows: list[dict[str, Any]], dimension: str) -> list[dict[str, Any]]:
    """Per value of `dimension`: the count of each decision, the totals and the mean latency, most evaluations
    first."""
    decisions: dict[Any, dict[str, int]] = defaultdict(dict)
    latency: dict[Any, float] = defaultdict(float)
    for row in rows:
        found = decisions[row[dimension]]
        found[row["decision"]] = found.get(row["decision"], 0) + row["count"]
        latency[row[dimension]] += row["latency_sum_ms"]
    groups = []
    for value, counts in decisions.items():
        total = sum(counts.values())
        blocked = counts.get(Decision.BLOCKED, 0)
        groups.append(
            {
                "value": value,
                "decisions": counts,
                "evaluations": total,
                "blocked": blocked,
                "sanitized": counts.get(Decision.SANITIZED, 0),
                "block_rate": _rate(blocked, total),
                # A mean, not a percentile: the rollups keep summed latency per key and application, not histograms.
                "latency_mean_ms": round(latency[value] / total, 2) if total else None,
            }
        )
    return sorted(groups, key=lambda group: (-group["evaluations"], str(group["value"] or "")))


def traffic_by_key(organization: Organization, period: Period) -> tuple[list[dict[str, Any]], int]:
    """The API keys with the most evaluations (label: the key's name and prefix, read from this organization's keys
    only), and how many more keys had traffic. Evaluations without a key (playground, console) are one group."""
    groups = _groups(_counts(organization, period, ["api_key_id", "decision"]), "api_key_id")
    shown, more = groups[:MAX_GROUPS], max(0, len(groups) - MAX_GROUPS)
    ids = [group["value"] for group in shown if group["value"] is not None]
    labels = {
        pk: f"{name} ({prefix}…)"
        for pk, name, prefix in ApiKey.objects.for_org(organization)
        .filter(pk__in=ids)
        .values_list("pk", "name", "prefix")
    }
    for group in shown:
        key = group["value"]
        if key is None:
            group.update(label="No API key (playground, tests, console)", filter=None)
        else:
            group.update(label=labels.get(key, "A deleted key"), filter={"api_key": str(key)})
    return shown, more


def traffic_by_application(organization: Organization, period: Period) -> tuple[list[dict[str, Any]], int]:
    """The applications (`metadata.application`) with the most evaluations, and how many more had traffic."""
    groups = _groups(_counts(organization, period, ["application", "decision"]), "application")
    shown, more = groups[:MAX_GROUPS], max(0, len(groups) - MAX_GROUPS)
    for group in shown:
        if group["value"]:
            group.update(label=group["value"], filter={"application": group["value"]})
        else:
            group.update(label="No application given", filter=None)
    return shown, more


# --- over time ----------------------------------------------------------------------------------------------------


def _series(organization: Organization, period: Period, dimensions: list[str]) -> list[dict[str, Any]]:
    rows = _counts(organization, period, dimensions, by_bucket=True)
    return sorted(rows, key=lambda row: (row["bucket"], *(str(row[name]) for name in dimensions)))


def detector_totals(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per deciding detector, its blocks and sanitizations over the whole period (summed from the per-bucket
    counts already read), most first."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for row in series:
        counts = found[row["decided_by"]]
        counts[row["decision"]] = counts.get(row["decision"], 0) + row["count"]
    rows = [{"decided_by": name, "decisions": counts, "total": sum(counts.values())} for name, counts in found.items()]
    return sorted(rows, key=lambda row: (-row["total"], row["decided_by"]))


# --- lists read from the evaluations ------------------------------------------------------------------------------


def top_blocked_inputs(organization: Organization, period: Period, limit: int = TOP_BLOCKED) -> list[dict[str, Any]]:
    """The texts this organization's firewall blocked most often in the period, by hash of the normalized text:
    the count, and the latest such evaluation (its text, cut short, and its threat type). Two queries."""
    blocked = evaluations_in(organization, period).filter(decision=Decision.BLOCKED).exclude(text_hash="")
    top = list(
        blocked.values("text_hash")
        .annotate(count=Count("pk"), latest_at=Max("created_at"))
        .order_by("-count", "text_hash")[:limit]
    )
    if not top:
        return []
    latest: dict[str, dict[str, Any]] = {}
    wanted = reduce(or_, (Q(text_hash=row["text_hash"], created_at=row["latest_at"]) for row in top))
    for row in (
        blocked.filter(wanted)
        .values(
            "pk",
            "text_hash",
            "text_length",
            "threat_type",
            "severity",
            "created_at",
            head=Substr("text", 1, TEXT_CHARS),
        )
        .order_by("text_hash", "pk")
    ):
        latest.setdefault(row["text_hash"], row)
    found = []
    for row in top:
        evaluation = latest.get(row["text_hash"])
        if evaluation is None:  # removed between the two queries
            continue
        found.append(
            {
                **row,
                "text": _preview(evaluation["head"], evaluation["text_length"]),
                "threat_type": evaluation["threat_type"],
                "severity": evaluation["severity"],
                "latest_id": evaluation["pk"],
            }
        )
    return found


def false_positives(
    organization: Organization, period: Period, *, acted: int, limit: int = LATEST_FALSE_POSITIVES
) -> dict[str, Any]:
    """False-positive reports on evaluations of the period the firewall acted on (blocked or sanitized): their
    count, their rate over `acted`, and the latest reported ones."""
    reported = evaluations_in(organization, period).filter(feedback=Feedback.FALSE_POSITIVE, decision__in=ACTED)
    count = reported.count()
    latest = [
        {**row, "text": _preview(row.pop("head"), row["text_length"])}
        for row in reported.values(
            "pk",
            "decision",
            "threat_type",
            "decided_by",
            "text_length",
            "created_at",
            "feedback_at",
            head=Substr("text", 1, TEXT_CHARS),
        ).order_by("-feedback_at", "-created_at", "pk")[:limit]
    ]
    return {"count": count, "acted": acted, "rate": _rate(count, acted), "latest": latest}


# --- the page -----------------------------------------------------------------------------------------------------


def firewall_stats(organization: Organization, period: Period) -> FirewallStats:
    """Everything the firewall analytics page shows for the organization over the period."""
    decisions_over_time = _series(organization, period, ["decision"])
    decisions: dict[str, int] = {}
    for row in decisions_over_time:
        decisions[row["decision"]] = decisions.get(row["decision"], 0) + row["count"]
    stats = FirewallStats(
        evaluations=sum(decisions.values()), decisions=decisions, decisions_over_time=decisions_over_time
    )
    if not stats.evaluations:
        stats.false_positives = {"count": 0, "acted": 0, "rate": None, "latest": []}
        return stats
    stats.by_key, stats.more_keys = traffic_by_key(organization, period)
    stats.by_application, stats.more_applications = traffic_by_application(organization, period)
    stats.threats_over_time = [
        row for row in _series(organization, period, ["threat_type"]) if row["threat_type"] != "none"
    ]
    acted_series = [
        row for row in _series(organization, period, ["decided_by", "decision"]) if row["decision"] in ACTED
    ]
    stats.detectors = detector_totals(acted_series)
    stats.detectors_over_time = _merge_decisions(acted_series)
    stats.top_blocked = top_blocked_inputs(organization, period)
    stats.false_positives = false_positives(organization, period, acted=stats.acted)
    return stats


def _merge_decisions(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`[{"bucket", "decided_by", "count"}]`: blocked and sanitized of a detector and bucket added up."""
    merged: dict[tuple[datetime, str], int] = defaultdict(int)
    for row in series:
        merged[(row["bucket"], row["decided_by"])] += row["count"]
    return [{"bucket": bucket, "decided_by": name, "count": count} for (bucket, name), count in sorted(merged.items())]
