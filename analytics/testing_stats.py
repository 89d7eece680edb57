"""Reads behind the testing analytics page: completed sessions of a period, their attack success rates by category
and by mutator, and the regressions between the last two completed sessions of each target.

Every function takes the organization (or sessions already scoped to it) and aggregates in the database: one
grouped `Count` per breakdown over the sessions' attack rows, so the page costs the same queries whatever the
number of results. The range selects sessions by creation time; a session's figures are all of its rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from analytics.selectors import Period, session_breakdown
from testing.choices import SessionStatus
from testing.models import Target, TestSession
from testing.stats import compare_sessions, wilson_interval

if TYPE_CHECKING:
    from accounts.models import Organization

# "All targets" shows the targets tested most recently; more would not be readable on one page.
MAX_TARGETS = 8
# A period's sessions, newest first: hourly CI runs over 30 days stay under it; older ones are left out beyond.
# Under 999 too, SQLite's oldest bound-parameter limit, as the grouped counts pass the sessions' ids.
MAX_SESSIONS = 900
ROUND = 4

Counts = dict[Any, dict[str, dict[str, Any]]]


def block(succeeded: int, scored: int) -> dict[str, Any]:
    """Succeeded and scored attacks with their rate and 95% Wilson interval (rate None when nothing was scored:
    no scored attack must never read as a 0% success rate)."""
    low, high = wilson_interval(succeeded, scored)
    return {
        "succeeded": succeeded,
        "scored": scored,
        "rate": round(succeeded / scored, ROUND) if scored else None,
        "ci95": (round(low, ROUND), round(high, ROUND)),
    }


def completed_sessions(
    organization: Organization, period: Period, target: Target | None = None, *, max_targets: int = MAX_TARGETS
) -> list[TestSession]:
    """The completed sessions created in the period of one target, or of the `max_targets` targets whose latest
    session is newest, oldest first. Sessions whose target was deleted have no line to sit on and are left out."""
    sessions = (
        TestSession.objects.for_org(organization)
        .filter(
            status=SessionStatus.COMPLETED,
            target__isnull=False,
            created_at__gte=period.since,
            created_at__lt=period.until,
        )
        .select_related("target")
        .order_by("-created_at", "-pk")
    )
    if target is not None:
        sessions = sessions.filter(target=target)
    kept: list[TestSession] = []
    targets: set[Any] = set()
    for session in sessions[:MAX_SESSIONS]:
        if session.target_id not in targets:
            if len(targets) >= max_targets:
                continue
            targets.add(session.target_id)
        kept.append(session)
    kept.reverse()
    return kept


def counts_by(sessions: list[TestSession], column: str) -> Counts:
    """`{session_id: {value: block}}` of the sessions' attack rows grouped by `column` (category or mutator): stored
    summaries of completed sessions, one grouped query for the others (`analytics.selectors.session_breakdown`)."""
    if column not in ("category", "mutator"):
        raise ValueError(f"Attack rows are broken down by category or mutator, not {column!r}.")
    return {
        session_id: {value: block(counts["succeeded"], counts["scored"]) for value, counts in groups.items()}
        for session_id, groups in session_breakdown(sessions, column).items()
    }


def session_totals(by_category: Counts) -> dict[Any, dict[str, Any]]:
    """Each session's overall attack success from its per-category counts (every attack row has a category)."""
    return {
        session_id: block(
            sum(value["succeeded"] for value in categories.values()),
            sum(value["scored"] for value in categories.values()),
        )
        for session_id, categories in by_category.items()
    }


def mutator_findings(sessions: list[TestSession], by_mutator: Counts) -> list[dict[str, Any]]:
    """Succeeded / scored per mutator ("" is the original prompt) across the sessions, highest rate first, with
    the latest session that ran the mutator and its own counts (the results list a bar opens is per session), and
    the latest one where it succeeded at least once (`found_session`, `found`; None when it never did), so a link
    can open some successes when the latest session had none."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    latest: dict[str, tuple[TestSession, dict[str, Any]]] = {}
    latest_found: dict[str, tuple[TestSession, dict[str, Any]]] = {}
    for session in sessions:  # oldest first, so the last one seen is the latest
        for mutator, counts in by_mutator.get(session.pk, {}).items():
            total = totals[mutator]
            total[0] += counts["succeeded"]
            total[1] += counts["scored"]
            total[2] += 1
            latest[mutator] = (session, counts)
            if counts["succeeded"]:
                latest_found[mutator] = (session, counts)
    found = [
        {
            "mutator": mutator,
            **block(succeeded, scored),
            "sessions": session_count,
            "latest_session": latest[mutator][0],
            "latest": latest[mutator][1],
            "found_session": latest_found.get(mutator, (None, None))[0],
            "found": latest_found.get(mutator, (None, None))[1],
        }
        for mutator, (succeeded, scored, session_count) in totals.items()
    ]
    found.sort(key=lambda row: (-(row["rate"] if row["rate"] is not None else -1.0), -row["scored"], row["mutator"]))
    return found


# --- regressions ---------------------------------------------------------------------------------------------------


@dataclass
class Regression:
    """The last two completed sessions of a target, compared item by item (`testing.stats.compare_sessions`)."""

    target: Target
    base: TestSession
    head: TestSession
    comparison: dict[str, Any]


def last_two_sessions(
    organization: Organization, until: datetime, target: Target | None = None, *, max_targets: int = MAX_TARGETS
) -> list[tuple[TestSession, TestSession]]:
    """`(base, head)`: each target's two latest completed sessions created before `until`, in one ranked query;
    targets with a single completed session have nothing to compare and are left out. Newest head first."""
    sessions = TestSession.objects.for_org(organization).filter(
        status=SessionStatus.COMPLETED, target__isnull=False, created_at__lt=until
    )
    if target is not None:
        sessions = sessions.filter(target=target)
    ranked = (
        sessions.annotate(
            _rank=Window(RowNumber(), partition_by=[F("target_id")], order_by=[F("created_at").desc(), F("pk").desc()])
        )
        .filter(_rank__lte=2)
        .select_related("target")
        .order_by("target_id", "_rank")
    )
    pairs: dict[Any, list[TestSession]] = defaultdict(list)
    for session in ranked:
        pairs[session.target_id].append(session)
    found = [(head_and_base[1], head_and_base[0]) for head_and_base in pairs.values() if len(head_and_base) == 2]
    found.sort(key=lambda pair: (pair[1].created_at, str(pair[1].pk)), reverse=True)
    return found[:max_targets]


def regressions(organization: Organization, until: datetime, target: Target | None = None) -> list[Regression]:
    """New findings, fixed, still failing and the rate change per category between the last two completed
    sessions of each target (at most `MAX_TARGETS`, latest first). A fixed number of queries per target."""
    return [
        Regression(target=head.target, base=base, head=head, comparison=compare_sessions(base, head).as_dict())
        for base, head in last_two_sessions(organization, until, target)
    ]
