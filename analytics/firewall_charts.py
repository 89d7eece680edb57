"""The firewall analytics page's Plotly figures, built from the rows of `analytics.firewall_stats`.

Same conventions as the overview (`analytics.figures`, whose layout helpers these reuse): plain
`{"data", "layout"}` dicts handed to `static/js/charts.js` with `json_script`, colours as CSS variables, and every
clickable bar carrying in its `customdata` the URL of the evaluations it counts. A bar whose rows the evaluation list
cannot select (no API key, no application, no recorded detector) carries no URL, rather than one to a list that would
count something else. Names typed by users (applications, key names) are escaped for Plotly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.urls import reverse

from analytics.figures import (
    COLORWAY,
    DECISION_COLORS,
    THREAT_LABELS,
    Chart,
    _axis,
    _count_axis,
    _layout,
    _local,
    _plain,
    _time_axis,
    evaluate_command,
    evaluations_over_time,
)
from analytics.selectors import Period
from firewall.choices import Decision, ThreatType

if TYPE_CHECKING:
    from analytics.firewall_stats import FirewallStats

ACTED = (Decision.BLOCKED, Decision.SANITIZED)
# One colour per threat type whatever the range shows, so a type keeps its colour from one range to the next.
THREAT_COLORS = {
    value: COLORWAY[index % len(COLORWAY)]
    for index, value in enumerate(value for value, _ in ThreatType.choices if value != "none")
}
# Names that capitalizing would get wrong: policy steps that decide like a detector, and an acronym.
DETECTOR_NAMES = {
    "emergency_stop": "Emergency stop",
    "fail_closed": "Fail closed",
    "rate_limit": "Rate limit",
    "pii": "PII",
}


def detector_label(name: str) -> str:
    """A detector (or policy step) as the page names it; blank is an acted evaluation stored before `decided_by`."""
    if not name:
        return "Not recorded"
    return DETECTOR_NAMES.get(name, name.replace("_", " ").capitalize())


def list_url(since: datetime, until: datetime, **filters: str | Sequence[str] | None) -> str:
    """The evaluation list filtered as a figure counted; a sequence repeats its parameter (`decision=…&decision=…`),
    which the list reads as "any of". `since` is inclusive and `until` exclusive, as in the figures."""
    params: list[tuple[str, str]] = []
    for name, value in filters.items():
        if not value:
            continue
        params += [(name, str(v)) for v in value] if isinstance(value, list | tuple) else [(name, str(value))]
    params += [("since", since.isoformat()), ("until", until.isoformat())]
    return f"{reverse('firewall:index')}?{urlencode(params)}"


# --- per API key and per application ------------------------------------------------------------------------------


def decision_mix(groups: Sequence[dict[str, Any]], period: Period, *, axis_title: str) -> dict[str, Any] | None:
    """Horizontal stacked bars: one bar per group (API key or application), one trace per decision; a segment opens
    the group's evaluations of that decision (when the list can select the group)."""
    if not groups:
        return None
    labels = [f"{index}. {_plain(group['label'])}" for index, group in enumerate(groups, 1)]
    data = []
    for decision, name in Decision.choices:
        if not any(group["decisions"].get(decision) for group in groups):
            continue
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": name,
                "y": labels,
                "x": [group["decisions"].get(decision, 0) for group in groups],
                "customdata": [
                    list_url(period.since, period.until, decision=decision, **group["filter"])
                    if group["filter"] is not None
                    else None
                    for group in groups
                ],
                "marker": {"color": DECISION_COLORS[decision]},
                "hovertemplate": f"%{{y}}<br>%{{x}} {name.lower()}<extra></extra>",
            }
        )
    layout = _layout(
        xaxis=_count_axis("Evaluations", max(group["evaluations"] for group in groups)),
        yaxis=_axis(axis_title, type="category", autorange="reversed", categoryorder="array", categoryarray=labels),
        barmode="stack",
        height=max(240, 60 + 28 * len(groups)),
    )
    return {"data": data, "layout": layout}


# --- over time ----------------------------------------------------------------------------------------------------


def _stacked_over_time(
    rows: Iterable[dict[str, Any]],
    period: Period,
    *,
    dimension: str,
    order: Sequence[str],
    label: Any,
    color: Any,
    link: Any,
    axis_title: str,
) -> dict[str, Any] | None:
    by_value: dict[str, list[dict[str, Any]]] = {}
    totals: dict[Any, int] = {}
    for row in rows:
        by_value.setdefault(row[dimension], []).append(row)
        totals[row["bucket"]] = totals.get(row["bucket"], 0) + row["count"]
    if not by_value:
        return None
    data = []
    for value in [*[v for v in order if v in by_value], *sorted(v for v in by_value if v not in order)]:
        found = sorted(by_value[value], key=lambda row: row["bucket"])
        name = label(value)
        data.append(
            {
                "type": "bar",
                "name": name,
                "x": [_local(row["bucket"]) for row in found],
                "y": [row["count"] for row in found],
                "customdata": [link(value, *period.bucket_bounds(row["bucket"])) for row in found],
                "marker": {"color": color(value)},
                "hovertemplate": f"%{{x}}<br>%{{y}} {_plain(name)}<extra></extra>",
            }
        )
    layout = _layout(xaxis=_time_axis(period), yaxis=_count_axis(axis_title, max(totals.values())), barmode="stack")
    return {"data": data, "layout": layout}


def threats_over_time(rows: Iterable[dict[str, Any]], period: Period) -> dict[str, Any] | None:
    """Stacked bars: evaluations that found a threat per bucket, one trace per threat type."""
    return _stacked_over_time(
        rows,
        period,
        dimension="threat_type",
        order=list(THREAT_COLORS),
        label=lambda threat: THREAT_LABELS.get(threat, threat),
        color=lambda threat: THREAT_COLORS.get(threat, "var(--muted)"),
        link=lambda threat, since, until: list_url(since, until, threat_type=threat),
        axis_title="Evaluations with a threat",
    )


def detectors_over_time(rows: Iterable[dict[str, Any]], period: Period, order: Sequence[str]) -> dict[str, Any] | None:
    """Stacked bars: blocked and sanitized evaluations per bucket, one trace per deciding detector."""
    colors = {name: COLORWAY[index % len(COLORWAY)] for index, name in enumerate(order)}
    return _stacked_over_time(
        rows,
        period,
        dimension="decided_by",
        order=order,
        label=detector_label,
        color=lambda name: colors.get(name, "var(--muted)"),
        link=lambda name, since, until: list_url(since, until, decision=list(ACTED), decided_by=name) if name else None,
        axis_title="Blocked or sanitized",
    )


def detector_contribution(rows: Sequence[dict[str, Any]], period: Period) -> dict[str, Any] | None:
    """Bars: how many blocks and sanitizations each detector decided (most first), stacked by decision."""
    if not rows:
        return None
    labels = [detector_label(row["decided_by"]) for row in rows]
    data = []
    for decision in ACTED:
        if not any(row["decisions"].get(decision) for row in rows):
            continue
        name = Decision(decision).label
        data.append(
            {
                "type": "bar",
                "name": name,
                "x": labels,
                "y": [row["decisions"].get(decision, 0) for row in rows],
                "customdata": [
                    list_url(period.since, period.until, decision=decision, decided_by=row["decided_by"])
                    if row["decided_by"]
                    else None
                    for row in rows
                ],
                "marker": {"color": DECISION_COLORS[decision]},
                "hovertemplate": f"%{{x}}<br>%{{y}} {name.lower()}<extra></extra>",
            }
        )
    layout = _layout(
        xaxis=_axis("Deciding detector", type="category", categoryorder="array", categoryarray=labels),
        yaxis=_count_axis("Evaluations", max(row["total"] for row in rows)),
        barmode="stack",
    )
    return {"data": data, "layout": layout}


# --- the page -----------------------------------------------------------------------------------------------------


def firewall_charts(stats: FirewallStats, period: Period, *, evaluate_url: str) -> list[Chart]:
    """Every chart of the firewall analytics page, in page order, with its list link and its empty state."""
    all_evaluations = list_url(period.since, period.until)
    acted_evaluations = list_url(period.since, period.until, decision=list(ACTED))
    has_traffic = stats.evaluations > 0
    no_traffic = {
        "empty": "No evaluations in this range — send one with curl:",
        "empty_command": evaluate_command(evaluate_url),
    }

    def unless_quiet(figure: dict[str, Any] | None, empty: str) -> dict[str, Any]:
        if not has_traffic:
            return {"figure": None, **no_traffic}
        return {"figure": figure, "empty": empty}

    return [
        Chart(
            key="keys",
            title="Decision mix per API key",
            subtitle="The API keys with the most evaluations, stacked by decision",
            list_url=all_evaluations,
            list_label="All evaluations",
            **unless_quiet(decision_mix(stats.by_key, period, axis_title="API key"), ""),
        ),
        Chart(
            key="applications",
            title="Decision mix per application",
            subtitle="metadata.application of the evaluations, stacked by decision",
            list_url=all_evaluations,
            list_label="All evaluations",
            **unless_quiet(decision_mix(stats.by_application, period, axis_title="Application"), ""),
        ),
        Chart(
            key="decisions",
            title="Decisions over time",
            subtitle=f"Evaluations per {period.bucket}, stacked by decision",
            list_url=all_evaluations,
            list_label="All evaluations",
            **unless_quiet(evaluations_over_time(stats.decisions_over_time, period), ""),
        ),
        Chart(
            key="threats",
            title="Threat types over time",
            subtitle=f"Evaluations with a threat per {period.bucket}, stacked by threat type",
            list_url=all_evaluations,
            list_label="All evaluations",
            **unless_quiet(
                threats_over_time(stats.threats_over_time, period),
                "No threats in this range: every evaluation was clean.",
            ),
        ),
        Chart(
            key="detectors",
            title="Detector contribution",
            subtitle="Which detector decided each block or sanitization",
            list_url=acted_evaluations,
            list_label="Blocked or sanitized",
            **unless_quiet(
                detector_contribution(stats.detectors, period),
                "Nothing was blocked or sanitized in this range.",
            ),
        ),
        Chart(
            key="detectors-over-time",
            title="Detector contribution over time",
            subtitle=f"Blocked or sanitized per {period.bucket}, stacked by deciding detector",
            list_url=acted_evaluations,
            list_label="Blocked or sanitized",
            **unless_quiet(
                detectors_over_time(stats.detectors_over_time, period, [row["decided_by"] for row in stats.detectors]),
                "Nothing was blocked or sanitized in this range.",
            ),
        ),
    ]
