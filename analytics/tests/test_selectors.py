"""The overview's selectors: exact figures on factory rows, only the organization's own, only inside the period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import rollups, selectors
from analytics.selectors import Period, percentiles
from analytics.tests.helpers import NOW, evaluation_at, session_at
from firewall.models import Evaluation
from firewall.tests.factories import ThreatPatternFactory
from promptbank.tests.factories import PromptFactory
from testing.choices import ResultKind, SessionStatus, Verdict
from testing.tests import factories as testing_factories

DAY = Period.ending(NOW, timedelta(hours=24), preset="24h")
TOLERANCE = rollups.BIN_RATIO**0.5  # half a latency bin


def results(session: Any, *verdicts: str, **fields: Any) -> None:
    for verdict in verdicts:
        testing_factories.TestResultFactory(
            organization=session.organization, session=session, verdict=verdict, **fields
        )


# --- the period ---------------------------------------------------------------------------------------------------


def test_a_period_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        Period(since=NOW, until=NOW)


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        (timedelta(hours=1), "minute"),
        (timedelta(hours=24), "hour"),
        (timedelta(days=7), "hour"),
        (timedelta(days=30), "day"),
    ],
)
def test_it_counts_series_in_buckets_that_suit_the_span(span: timedelta, bucket: str) -> None:
    assert Period.ending(NOW, span).bucket == bucket


def test_a_bucket_link_is_clipped_to_the_period() -> None:
    period = Period(since=NOW - timedelta(hours=4, minutes=30), until=NOW - timedelta(minutes=10))

    assert period.bucket == "hour"
    assert period.bucket_bounds(NOW - timedelta(hours=5)) == (period.since, NOW - timedelta(hours=4))
    assert period.bucket_bounds(NOW - timedelta(hours=2)) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    assert period.bucket_bounds(NOW - timedelta(hours=1)) == (NOW - timedelta(hours=1), period.until)


# --- percentiles --------------------------------------------------------------------------------------------------


def test_percentiles_interpolate_like_percentile_cont(org_a: Any) -> None:
    for latency in (5.0, 1.0, 3.0, 10.0, 7.5, 2.25, 100.0):
        evaluation_at(org_a, NOW, latency_ms=latency)

    found = percentiles(Evaluation.objects.for_org(org_a), "latency_ms", (0.0, 0.5, 0.9, 0.95, 1.0))

    # Sorted: 1, 2.25, 3, 5, 7.5, 10, 100; position f * 6, interpolated between neighbours.
    assert found == {None: {0.0: 1.0, 0.5: 5.0, 0.9: 46.0, 0.95: 73.0, 1.0: 100.0}}


def test_percentiles_per_group_in_one_query(org_a: Any, django_assert_num_queries: Any) -> None:
    for minutes, latency in ((90, 10.0), (80, 20.0), (30, 30.0)):
        evaluation_at(org_a, NOW - timedelta(minutes=minutes), latency_ms=latency)

    with django_assert_num_queries(1):
        found = percentiles(Evaluation.objects.for_org(org_a), "latency_ms", group_by=DAY.truncate())

    assert found == {
        datetime(2025, 3, 10, 10, tzinfo=UTC): {0.5: 15.0, 0.95: 19.5},
        datetime(2025, 3, 10, 11, tzinfo=UTC): {0.5: 30.0, 0.95: 30.0},
    }


def test_percentiles_of_nothing_are_absent_and_fractions_are_checked(org_a: Any) -> None:
    assert percentiles(Evaluation.objects.for_org(org_a), "latency_ms") == {}
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentiles(Evaluation.objects.for_org(org_a), "latency_ms", (95,))


# --- key figures --------------------------------------------------------------------------------------------------


@pytest.fixture
def traffic(org_a: Any, org_b: Any) -> None:
    """Five evaluations of A in the day, two of A just outside it, three of B inside it."""
    inside = NOW - timedelta(hours=2)
    evaluation_at(org_a, inside, decision="blocked", latency_ms=10, feedback="false_positive")
    evaluation_at(org_a, inside, decision="blocked", latency_ms=20)
    evaluation_at(org_a, inside, decision="sanitized", latency_ms=30, threat_type="pii", severity="medium")
    evaluation_at(org_a, inside, decision="allowed", latency_ms=40, threat_type="none", severity="none")
    evaluation_at(org_a, inside, decision="allowed", latency_ms=100, threat_type="none", severity="none")
    evaluation_at(org_a, NOW - timedelta(hours=25), decision="blocked", latency_ms=999)
    evaluation_at(org_a, NOW, decision="blocked", latency_ms=999)  # `until` is exclusive
    for _ in range(3):
        evaluation_at(org_b, inside, decision="blocked", latency_ms=500, feedback="false_positive")


def test_it_counts_the_key_figures_of_the_period_and_the_organization_only(
    org_a: Any, org_b: Any, traffic: None
) -> None:
    older = session_at(org_a, NOW - timedelta(days=3))  # completed, but not the latest
    results(older, Verdict.SUCCEEDED, Verdict.SUCCEEDED)
    latest = session_at(org_a, NOW - timedelta(hours=5))
    results(latest, Verdict.SUCCEEDED, Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED, Verdict.ERROR)
    results(latest, Verdict.SUCCEEDED, kind=ResultKind.BASELINE)  # the control prompts are not attacks
    session_at(org_a, NOW - timedelta(hours=1), status=SessionStatus.RUNNING)
    results(session_at(org_b, NOW - timedelta(hours=1)), Verdict.RESISTED)
    PromptFactory.create_batch(2, organization=org_a)
    PromptFactory(organization=org_a, is_active=False)
    PromptFactory(organization=None)  # the global bank counts: the organization tests with it
    PromptFactory(organization=org_b)

    kpis = selectors.overview_kpis(org_a, DAY)

    assert {key: kpis[key] for key in ("evaluations", "blocked", "acted", "false_positives", "sessions")} == {
        "evaluations": 5,
        "blocked": 2,
        "acted": 3,
        "false_positives": 1,
        "sessions": 2,
    }
    assert kpis["block_rate"] == 0.4
    assert kpis["false_positive_rate"] == 0.3333
    assert (kpis["latency_p50"], kpis["latency_p95"]) == (30.0, 88.0)
    assert kpis["latest_session"] == latest
    assert kpis["latest_attack_success"] == {"succeeded": 2, "scored": 4, "rate": 0.5}
    assert kpis["bank_size"] == 3


def test_rates_are_unknown_rather_than_zero_without_traffic(org_a: Any) -> None:
    kpis = selectors.overview_kpis(org_a, DAY)

    assert kpis["evaluations"] == 0
    assert kpis["block_rate"] is None
    assert kpis["false_positive_rate"] is None
    assert kpis["latency_p50"] is None
    assert kpis["latest_session"] is None
    assert kpis["latest_attack_success"] is None


# --- series -------------------------------------------------------------------------------------------------------


def test_it_counts_evaluations_per_hour_and_decision(org_a: Any, org_b: Any) -> None:
    evaluation_at(org_a, NOW - timedelta(minutes=90), decision="blocked")
    evaluation_at(org_a, NOW - timedelta(minutes=80), decision="blocked")
    evaluation_at(org_a, NOW - timedelta(minutes=70), decision="allowed")
    evaluation_at(org_a, NOW - timedelta(minutes=30), decision="allowed")
    evaluation_at(org_a, NOW - timedelta(days=2), decision="allowed")
    evaluation_at(org_b, NOW - timedelta(minutes=30), decision="blocked")

    rows = selectors.evaluations_by_decision(org_a, DAY)

    ten, eleven = datetime(2025, 3, 10, 10, tzinfo=UTC), datetime(2025, 3, 10, 11, tzinfo=UTC)
    assert rows == [
        {"bucket": ten, "decision": "allowed", "count": 1},
        {"bucket": ten, "decision": "blocked", "count": 2},
        {"bucket": eleven, "decision": "allowed", "count": 1},
    ]


def test_it_counts_threats_by_type_and_severity_without_clean_traffic(org_a: Any, traffic: None) -> None:
    evaluation_at(org_a, NOW - timedelta(hours=1), threat_type="jailbreak", severity="critical")

    assert selectors.threats_by_type_and_severity(org_a, DAY) == [
        {"threat_type": "jailbreak", "severity": "critical", "count": 1},
        {"threat_type": "pii", "severity": "medium", "count": 1},
        {"threat_type": "prompt_injection", "severity": "high", "count": 2},
    ]


def test_it_gives_latency_percentiles_per_bucket(org_a: Any, org_b: Any) -> None:
    for minutes, latency in ((90, 10.0), (80, 20.0), (30, 30.0)):
        evaluation_at(org_a, NOW - timedelta(minutes=minutes), latency_ms=latency)
    evaluation_at(org_b, NOW - timedelta(minutes=30), latency_ms=1000.0)

    assert selectors.latency_by_bucket(org_a, DAY) == [
        {"bucket": datetime(2025, 3, 10, 10, tzinfo=UTC), "p50": 15.0, "p95": 19.5},
        {"bucket": datetime(2025, 3, 10, 11, tzinfo=UTC), "p50": 30.0, "p95": 30.0},
    ]


def test_it_takes_the_latest_completed_session_of_each_target(org_a: Any, org_b: Any) -> None:
    zeta, alpha = (
        testing_factories.TargetFactory(organization=org_a, name="Zeta"),
        testing_factories.TargetFactory(organization=org_a, name="alpha"),
    )
    session_at(org_a, NOW - timedelta(days=5), target=zeta)
    newest_zeta = session_at(org_a, NOW - timedelta(days=1), target=zeta)
    session_at(org_a, NOW - timedelta(hours=1), target=zeta, status=SessionStatus.RUNNING)
    only_alpha = session_at(org_a, NOW - timedelta(days=9), target=alpha)
    session_at(org_b, NOW - timedelta(hours=2))

    assert selectors.latest_sessions_per_target(org_a) == [only_alpha, newest_zeta]


def test_it_rates_attack_success_per_category_over_scored_attacks(org_a: Any, org_b: Any) -> None:
    first, second = session_at(org_a, NOW), session_at(org_a, NOW)
    results(first, Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.ERROR, Verdict.UNSCORABLE)
    results(first, Verdict.BLOCKED, category="jailbreak")
    results(first, Verdict.SUCCEEDED, kind=ResultKind.BASELINE, category="benign")
    results(second, Verdict.ERROR)

    rates = selectors.attack_success_by_category([first, second])

    assert rates == {
        first.pk: {
            "jailbreak": {"succeeded": 0, "scored": 1, "rate": 0.0},
            "prompt_injection": {"succeeded": 1, "scored": 2, "rate": 0.5},
        },
        second.pk: {"prompt_injection": {"succeeded": 0, "scored": 0, "rate": None}},
    }
    with pytest.raises(ValueError, match="one organization"):
        selectors.attack_success_by_category([first, session_at(org_b, NOW)])


def test_top_threat_patterns_count_the_organizations_own_blocked_attacks_by_hash(org_a: Any, org_b: Any) -> None:
    inside = NOW - timedelta(hours=1)
    repeated = [evaluation_at(org_a, inside, text="the same attack") for _ in range(3)]
    once = evaluation_at(org_a, inside, text="another attack", threat_type="jailbreak")
    for _ in range(5):
        evaluation_at(org_a, inside, text="allowed often", decision="allowed")
    for _ in range(4):
        evaluation_at(org_b, inside, text="the same attack")
    ThreatPatternFactory(pattern_hash=repeated[0].text_hash, organizations_affected=2)

    assert selectors.top_threat_patterns(org_a, DAY) == [
        {
            "text_hash": repeated[0].text_hash,
            "count": 3,
            "threat_type": "prompt_injection",
            "organizations_affected": 2,
        },
        {"text_hash": once.text_hash, "count": 1, "threat_type": "jailbreak", "organizations_affected": None},
    ]


def test_effective_prompts_rank_by_successes_in_the_period(org_a: Any, org_b: Any) -> None:
    own, shared, resisted = (
        PromptFactory(organization=org_a, text="Own prompt that works"),
        PromptFactory(organization=None, text="Global prompt that works"),
        PromptFactory(organization=org_a, text="Prompt that never works"),
    )
    session = session_at(org_a, NOW - timedelta(hours=3))
    inside = NOW - timedelta(hours=1)
    results(
        session,
        Verdict.SUCCEEDED,
        Verdict.SUCCEEDED,
        Verdict.SUCCEEDED,
        Verdict.RESISTED,
        prompt=own,
        completed_at=inside,
    )
    results(session, Verdict.SUCCEEDED, Verdict.SUCCEEDED, Verdict.SUCCEEDED, prompt=shared, completed_at=inside)
    results(session, Verdict.RESISTED, prompt=resisted, completed_at=inside)
    results(session, Verdict.SUCCEEDED, prompt=resisted, completed_at=NOW - timedelta(days=2))
    other = session_at(org_b, NOW - timedelta(hours=3))
    results(other, *[Verdict.SUCCEEDED] * 5, prompt=shared, completed_at=inside)

    rows = selectors.effective_prompts(org_a, DAY)

    assert [(row["prompt_id"], row["succeeded"], row["scored"], row["rate"]) for row in rows] == [
        (shared.pk, 3, 3, 1.0),  # same successes, fewer tries: first
        (own.pk, 3, 4, 0.75),
    ]
    assert [row["text"] for row in rows] == ["Global prompt that works", "Own prompt that works"]


def test_the_overview_reads_the_same_figures_once_rolled_up(org_a: Any, traffic: None) -> None:
    evaluation_at(org_a, NOW - timedelta(minutes=20), decision="sanitized", latency_ms=3.0)  # after the cursor
    evaluation_at(org_a, NOW - timedelta(hours=23, minutes=50), latency_ms=60.0)  # the period's partial first hour
    reads = {
        "kpis": lambda: {
            key: value
            for key, value in selectors.overview_kpis(org_a, DAY).items()
            if key not in ("latency_p50", "latency_p95")
        },
        "decisions": lambda: selectors.evaluations_by_decision(org_a, DAY),
        "threats": lambda: selectors.threats_by_type_and_severity(org_a, DAY),
        "patterns": lambda: selectors.top_threat_patterns(org_a, DAY),
    }
    raw = {name: read() for name, read in reads.items()}
    exact = selectors.overview_kpis(org_a, DAY)

    rollups.rebuild(now=NOW)

    assert rollups.cursors()["hour"] == NOW - timedelta(hours=1)
    assert {name: read() for name, read in reads.items()} == raw
    rolled = selectors.overview_kpis(org_a, DAY)
    for key in ("latency_p50", "latency_p95"):  # from the histogram now: within half a bin
        assert exact[key] / TOLERANCE <= rolled[key] <= exact[key] * TOLERANCE
    assert [row["bucket"] for row in selectors.latency_by_bucket(org_a, DAY)] == [
        NOW - timedelta(hours=24),
        NOW - timedelta(hours=2),
        NOW - timedelta(minutes=60),
    ]
