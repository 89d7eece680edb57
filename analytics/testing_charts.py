"""The testing analytics page's Plotly figures (and the attack-success trend the overview can show), built in Python
as plain `{"data": [...], "layout": {...}}` dicts from `analytics.testing_stats`.

They follow `analytics.figures`: CSS-variable colours that `static/js/charts.js` resolves for the theme, user text
escaped for Plotly, and in every clickable point's `customdata` the URL of the list it counts: a session's
successful attacks of the category or mutator (`kind=attack&verdict=succeeded`), so the list holds exactly the
"succeeded" of the hover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from analytics import testing_stats
from analytics.figures import CATEGORY_LABELS, Chart, _axis, _layout, _local, _plain, session_results_url
from analytics.selectors import Period
from promptbank.choices import Mutator
from testing.choices import ResultKind, Verdict
from testing.filters import ORIGINAL_MUTATOR

if TYPE_CHECKING:
    from accounts.models import Organization
    from testing.models import Target, TestSession

MUTATOR_LABELS = {"": "Original (no mutator)", **dict(Mutator.choices)}
RATE_AXIS = "Attack success rate (%)"
NEW_FINDINGS_SHOWN = 3
# Sessions closer together than this get a time axis padded by a day either side (see `_time_axis`).
MIN_TIME_SPAN = timedelta(days=1)
TIME_PADDING = timedelta(days=1)
DAY_MS = 24 * 60 * 60 * 1000
RATE_HEADROOM = 5  # percentage points of room beyond 0 and 100 %, for the markers


# --- links and labels ------------------------------------------------------------------------------------------------


def findings_url(session_id: Any, *, category: str = "", mutator: str | None = None) -> str:
    """A session's successful attacks, of one category or one mutator (the original prompts: `mutator=original`)."""
    filters = {"kind": ResultKind.ATTACK.value, "verdict": Verdict.SUCCEEDED.value, "category": category}
    if mutator is not None:
        filters["mutator"] = mutator or ORIGINAL_MUTATOR
    return session_results_url(session_id, **filters)


def compare_url(base: TestSession, head: TestSession) -> str:
    return f"{reverse('testing:compare')}?{urlencode({'base': str(base.pk), 'head': str(head.pk)})}"


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _ci(ci95: tuple[float, float]) -> str:
    return f"{ci95[0] * 100:.1f}\u2013{ci95[1] * 100:.1f}%"


def _signed(delta: float | None) -> str:
    """A change of rate in percentage points ("+12.5 pp"); "—" when either side had nothing scored."""
    return "—" if delta is None else f"{delta * 100:+.1f} pp"


def _y(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def _hover(counts: dict[str, Any]) -> str:
    if not counts["scored"]:
        return f"{counts['succeeded']} succeeded, nothing scored"
    return f"{counts['succeeded']} of {counts['scored']} scored attacks succeeded<br>95% CI {_ci(counts['ci95'])}"


def _session_name(session: TestSession) -> str:
    return _plain(f"{session} · {timezone.localtime(session.created_at):%Y-%m-%d %H:%M}")


def _time_axis(sessions: list[TestSession]) -> dict[str, Any]:
    """The session start axis. Sessions within a day of each other (one session, or a few run back to back) would
    make Plotly zoom to minutes or milliseconds and stack the points on one vertical line: the axis then spans a
    day either side, with a tick per day."""
    axis = _axis(f"Session started ({timezone.get_current_timezone_name()})", type="date")
    if not sessions:
        return axis
    first = min(session.created_at for session in sessions)
    last = max(session.created_at for session in sessions)
    if last - first < MIN_TIME_SPAN:
        axis.update(
            range=[_local(first - TIME_PADDING), _local(last + TIME_PADDING)],
            dtick=DAY_MS,
            tickformat="%b %d",
        )
    return axis


def _rate_axis() -> dict[str, Any]:
    """0 to 100 % with a little room beyond both ends, so a point at 0 or 100 % is drawn whole, not cut in half by
    the plot's edge; the ticks stay on 0, 20, … 100."""
    return _axis(RATE_AXIS, range=[-RATE_HEADROOM, 100 + RATE_HEADROOM], tick0=0, dtick=20, zeroline=False)


# --- figures --------------------------------------------------------------------------------------------------------


def category_trend(sessions: list[TestSession], by_category: testing_stats.Counts) -> dict[str, Any] | None:
    """Lines: one target's attack success rate per category over its sessions; a point opens that session's
    successful attacks of the category."""
    categories = sorted({category for session in sessions for category in by_category.get(session.pk, {})})
    data = []
    for category in categories:
        shown = [session for session in sessions if category in by_category.get(session.pk, {})]
        counts = [by_category[session.pk][category] for session in shown]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": CATEGORY_LABELS.get(category, category),
                "x": [_local(session.created_at) for session in shown],
                "y": [_y(found["rate"]) for found in counts],
                "text": [f"{_session_name(s)}<br>{_hover(found)}" for s, found in zip(shown, counts, strict=True)],
                "customdata": [findings_url(session.pk, category=category) for session in shown],
                "hovertemplate": "%{y:.1f}%<br>%{text}<extra>%{fullData.name}</extra>",
                "marker": {"size": 7},
            }
        )
    if not data:
        return None
    return {"data": data, "layout": _layout(xaxis=_time_axis(sessions), yaxis=_rate_axis())}


def asr_trend(sessions: list[TestSession], totals: dict[Any, dict[str, Any]]) -> dict[str, Any] | None:
    """Lines: each target's overall attack success rate over its sessions; a point opens the session's successful
    attacks."""
    by_target: dict[Any, list[TestSession]] = {}
    for session in sessions:
        if session.pk in totals:
            by_target.setdefault(session.target_id, []).append(session)
    data = []
    for shown in sorted(by_target.values(), key=lambda found: (found[0].target.name.casefold(), str(found[0].pk))):
        counts = [totals[session.pk] for session in shown]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _plain(shown[0].target.name),
                "x": [_local(session.created_at) for session in shown],
                "y": [_y(found["rate"]) for found in counts],
                "text": [f"{_session_name(s)}<br>{_hover(found)}" for s, found in zip(shown, counts, strict=True)],
                "customdata": [findings_url(session.pk) for session in shown],
                "hovertemplate": "%{y:.1f}%<br>%{text}<extra>%{fullData.name}</extra>",
                "marker": {"size": 7},
            }
        )
    if not data:
        return None
    return {"data": data, "layout": _layout(xaxis=_time_axis(sessions), yaxis=_rate_axis())}


def asr_trend_figure(organization: Organization, period: Period) -> dict[str, Any] | None:
    """The attack success rate of each target's completed sessions created in the period (the targets tested most
    recently), for the overview; None when there is none. Two queries."""
    sessions = testing_stats.completed_sessions(organization, period)
    return asr_trend(sessions, testing_stats.session_totals(testing_stats.counts_by(sessions, "category")))


@dataclass(frozen=True)
class MutatorLink:
    """Where a mutator's bar and table row lead: the successful attacks of the mutator in one session, and how
    many that list holds. The latest session that ran the mutator, unless it had none and an earlier one had some."""

    session: TestSession
    succeeded: int
    latest: bool

    @property
    def hover(self) -> str:
        where = "the latest" if self.latest else "the latest with any (none in the latest)"
        return f"Click: the {self.succeeded} successful in {where}, {_session_name(self.session)}"

    @property
    def label(self) -> str:
        if self.latest:
            return f"Latest session's {self.succeeded} successful"
        day = timezone.localtime(self.session.created_at)
        return f"{self.succeeded} successful on {day:%b} {day.day} (none in the latest)"


def mutator_link(row: dict[str, Any]) -> MutatorLink:
    """The session a mutator's link opens (see `MutatorLink`), from a `testing_stats.mutator_findings` row."""
    if row["latest"]["succeeded"] or row.get("found_session") is None:
        return MutatorLink(row["latest_session"], row["latest"]["succeeded"], latest=True)
    return MutatorLink(row["found_session"], row["found"]["succeeded"], latest=False)


def mutator_bars(findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Bars: the attack success rate per mutator across the sessions (which encodings get through); a bar opens
    the successful attacks of that mutator in the latest session that ran it (or, when it had none, the latest
    session where the mutator succeeded)."""
    if not findings:
        return None
    links = [mutator_link(row) for row in findings]
    hover = [
        f"{_hover(row)}<br>over {row['sessions']} session{'' if row['sessions'] == 1 else 's'}<br>{link.hover}"
        for row, link in zip(findings, links, strict=True)
    ]
    data = [
        {
            "type": "bar",
            "name": "Attack success rate",
            "x": [MUTATOR_LABELS.get(row["mutator"], _plain(row["mutator"])) for row in findings],
            "y": [_y(row["rate"]) for row in findings],
            "text": hover,
            "customdata": [
                findings_url(link.session.pk, mutator=row["mutator"]) for row, link in zip(findings, links, strict=True)
            ],
            "marker": {"color": "var(--danger)"},
            "hovertemplate": "%{x}: %{y:.1f}%<br>%{text}<extra></extra>",
            "textposition": "none",
        }
    ]
    layout = _layout(
        xaxis=_axis("Mutator", type="category"),
        yaxis=_axis(RATE_AXIS, range=[0, 100]),
        showlegend=False,
    )
    return {"data": data, "layout": layout}


# --- the page ---------------------------------------------------------------------------------------------------------


@dataclass
class TestingPage:
    """Everything the testing analytics page shows for a period (and one target or all)."""

    __test__ = False  # not a pytest class

    sessions: list[TestSession]
    target_charts: list[Chart]
    trend: Chart
    mutators: Chart
    mutator_rows: list[dict[str, Any]]
    regressions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def charts(self) -> list[Chart]:
        return [self.trend, *self.target_charts, self.mutators]

    @property
    def has_figures(self) -> bool:
        return any(chart.figure for chart in self.charts)


def _sessions_url(period: Period, target: Target | None) -> str:
    params = {"status": "completed", "since": period.since.isoformat(), "until": period.until.isoformat()}
    if target is not None:
        params["target"] = str(target.pk)
    return f"{reverse('testing:sessions')}?{urlencode(params)}"


def _regression_rows(found: list[testing_stats.Regression]) -> list[dict[str, Any]]:
    rows = []
    for regression in found:
        comparison = regression.comparison
        change = comparison["rate_change"]
        rows.append(
            {
                "target": regression.target,
                "base": regression.base,
                "head": regression.head,
                "counts": comparison["counts"],
                "new_findings": [
                    {**row, "category": CATEGORY_LABELS.get(row["category"], row["category"])}
                    for row in comparison["new_findings"][:NEW_FINDINGS_SHOWN]
                ],
                "base_rate": _pct(change["base"]),
                "head_rate": _pct(change["head"]),
                "delta": _signed(change["delta"]),
                "worse": (change["delta"] or 0) > 0,
                "categories": [
                    {
                        "category": category,
                        "label": CATEGORY_LABELS.get(category, category),
                        "base": _pct(values["base"]),
                        "head": _pct(values["head"]),
                        "delta": _signed(values["delta"]),
                        "worse": (values["delta"] or 0) > 0,
                    }
                    for category, values in change["by_category"].items()
                ],
                "compare_url": compare_url(regression.base, regression.head),
            }
        )
    return rows


def red_team_page(organization: Organization, period: Period, target: Target | None = None) -> TestingPage:
    """The page's charts, tables and empty states. Queries: the sessions, one grouped count by category and one by
    mutator, then the ranked last two sessions and a comparison per target (at most `MAX_TARGETS`)."""
    sessions = testing_stats.completed_sessions(organization, period, target)
    by_category = testing_stats.counts_by(sessions, "category")
    by_mutator = testing_stats.counts_by(sessions, "mutator")
    sessions_url = _sessions_url(period, target)
    no_sessions = {
        "empty": "No completed test session in this range — run a suite against a target, from the testing page "
        "or in CI with:",
        "empty_command": "python manage.py run_suite --org "
        f"{organization.slug} --target {_quoted(target.name if target else 'NAME')} --suite NAME --wait",
        "empty_link": ("Start a test session", reverse("testing:index")),
    }
    per_target: dict[Any, list[TestSession]] = {}
    for session in sessions:
        per_target.setdefault(session.target_id, []).append(session)
    target_charts = [
        Chart(
            key=f"categories-{index}",
            title=f"{shown[0].target.name}: attack success by category",
            subtitle=f"{len(shown)} completed session{'' if len(shown) == 1 else 's'} in this range, in %",
            list_url=_sessions_url(period, shown[0].target),
            list_label="Its sessions",
            figure=category_trend(shown, by_category),
            empty="These sessions have no scored attacks.",
        )
        for index, shown in enumerate(
            sorted(per_target.values(), key=lambda found: (found[0].target.name.casefold(), str(found[0].pk))), 1
        )
    ]
    findings = testing_stats.mutator_findings(sessions, by_mutator)
    until = period.until
    return TestingPage(
        sessions=sessions,
        target_charts=target_charts,
        trend=Chart(
            key="asr-trend",
            title="Attack success rate over sessions",
            subtitle="All categories, per target, in %",
            list_url=sessions_url,
            list_label="These sessions",
            figure=asr_trend(sessions, testing_stats.session_totals(by_category)),
            **no_sessions,
        ),
        mutators=Chart(
            key="mutators",
            title="Findings by mutator",
            subtitle="Which encodings and wrappers get through, across this range's sessions, in %",
            list_url=sessions_url,
            list_label="These sessions",
            figure=mutator_bars(findings),
            **no_sessions,
        ),
        mutator_rows=[
            {
                **row,
                "label": MUTATOR_LABELS.get(row["mutator"], row["mutator"]),
                "pct": _pct(row["rate"]),
                "ci": _ci(row["ci95"]),
                "url": findings_url(link.session.pk, mutator=row["mutator"]),
                "link_label": link.label,
            }
            for row, link in ((row, mutator_link(row)) for row in findings)
        ],
        regressions=_regression_rows(testing_stats.regressions(organization, until, target)),
    )


def _quoted(text: str) -> str:
    """A shell word: as is when plain, in single quotes otherwise."""
    if text and all(ch.isalnum() or ch in "-_." for ch in text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"
