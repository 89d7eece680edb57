"""The learning page's Plotly figures, built in Python from `analytics.learning_stats` (as `analytics.figures`: CSS
variable colours resolved by `static/js/charts.js`, and in a clickable point's `customdata` the list it counts)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from analytics.figures import COLORWAY, Chart, _axis, _count_axis, _layout, _local, _time_axis
from analytics.learning_stats import LearningStats
from analytics.selectors import Period
from promptbank.choices import LearningEventType, SubmissionStatus

EVENT_LABELS = dict(LearningEventType.choices)
STAGE_COLORS = {
    "findings": "var(--info)",
    "submissions": "var(--accent)",
    "accepted": "var(--warning)",
    "detected": "var(--success)",
}


def stage_links() -> dict[str, str]:
    """Where each stage of the funnel is listed (findings have no list of their own: the timeline shows them)."""
    submissions = reverse("promptbank:submissions")
    return {
        "findings": "",
        "submissions": submissions,
        "accepted": f"{submissions}?status={SubmissionStatus.ACCEPTED}",
        "detected": reverse("testing:sessions"),
    }


def funnel_figure(stats: LearningStats) -> dict[str, Any] | None:
    """A funnel: findings → submissions → accepted → detected; None when the loop did nothing in the period."""
    stages = stats.funnel
    if not any(count for _, _, count in stages):
        return None
    links = stage_links()
    data = [
        {
            "type": "funnel",
            "y": [label for _, label, _ in stages],
            "x": [count for _, _, count in stages],
            "customdata": [links[key] for key, _, _ in stages],
            "textinfo": "value+percent initial",
            "marker": {"color": [STAGE_COLORS[key] for key, _, _ in stages]},
            "connector": {"fillcolor": "var(--border)"},
            "hovertemplate": "%{y}: %{x}<extra></extra>",
        }
    ]
    layout = _layout(xaxis=_axis(visible=False), yaxis=_axis("", type="category"), showlegend=False)
    return {"data": data, "layout": layout}


def events_figure(stats: LearningStats, period: Period) -> dict[str, Any] | None:
    """Stacked bars: learning events per bucket, one trace per event type (in the vocabulary's order)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in stats.events_by_type:
        by_type.setdefault(row["event_type"], []).append(row)
    if not by_type:
        return None
    order = [value for value in LearningEventType.values if value in by_type]
    order += sorted(set(by_type) - set(order))  # a type written before the vocabulary knew it
    data = []
    for index, event_type in enumerate(order):
        rows = by_type[event_type]
        label = EVENT_LABELS.get(event_type, event_type)
        data.append(
            {
                "type": "bar",
                "name": label,
                "x": [_local(row["bucket"]) for row in rows],
                "y": [row["count"] for row in rows],
                "marker": {"color": COLORWAY[index % len(COLORWAY)]},
                "hovertemplate": f"%{{x}}<br>{label}: %{{y}}<extra></extra>",
            }
        )
    totals: dict[Any, int] = {}
    for row in stats.events_by_type:
        totals[row["bucket"]] = totals.get(row["bucket"], 0) + row["count"]
    layout = _layout(xaxis=_time_axis(period), yaxis=_count_axis("Events", max(totals.values())), barmode="stack")
    return {"data": data, "layout": layout}


def learning_charts(stats: LearningStats, period: Period) -> list[Chart]:
    """The page's two charts, in page order, with their empty states."""
    return [
        Chart(
            key="loop",
            title="The loop",
            subtitle="Findings → submissions → accepted → detected by the firewall in a later test",
            list_url=reverse("promptbank:submissions"),
            list_label="Submissions",
            figure=funnel_figure(stats),
            empty="Nothing went round the loop in this range: no finding, submission or acceptance.",
            empty_link=("Start a test session", reverse("testing:index")),
        ),
        Chart(
            key="events",
            title="Learning events over time",
            subtitle=f"Per {period.bucket}, stacked by type",
            list_url="",
            list_label="",
            figure=events_figure(stats, period),
            empty="No learning events in this range.",
        ),
    ]
