"""Rollups: the same figures from rollups + raw rows as from raw rows alone, on any period, before and after the
cursor; building them (recent hours, rebuilds, idempotent), the job's schedule and the command."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from analytics import jobs, rollups
from analytics.models import EvaluationRollup, Granularity, LatencyRollup, PatternRollup, RollupCursor
from analytics.selectors import Period, percentiles
from analytics.tests.helpers import NOW, evaluation_at
from firewall.models import Evaluation

TOLERANCE = math.sqrt(rollups.BIN_RATIO)  # half a bin, as a factor
DECISIONS = ("allowed", "blocked", "sanitized", "throttled")
THREATS = (("none", "none"), ("prompt_injection", "high"), ("jailbreak", "critical"), ("pii", "medium"))
TEXTS = [f"attack number {n}" for n in range(6)]

PERIODS = {
    "30 days, aligned (day buckets)": Period.ending(NOW, timedelta(days=30)),
    "9 days, ragged edges (day buckets)": Period(NOW - timedelta(days=9, minutes=17), NOW - timedelta(minutes=3)),
    "7 days, aligned (hour buckets)": Period.ending(NOW, timedelta(days=7)),
    "26 hours, ragged, into the future (hour buckets)": Period(
        NOW - timedelta(hours=23, minutes=41), NOW + timedelta(hours=2, minutes=19)
    ),
    "5 hours inside one day, ragged": Period(NOW - timedelta(hours=8, minutes=59), NOW - timedelta(hours=3, seconds=1)),
    "2 hours (minute buckets)": Period.ending(NOW - timedelta(minutes=30), timedelta(hours=2)),
}
GROUPINGS = [(), ("decision",), ("threat_type", "severity"), ("application", "api_key_id", "decided_by", "direction")]


def spread(organization: Any, count: int, seed: int, api_key: Any = None) -> list[Evaluation]:
    """Evaluations at random moments of the last 10 days and the next 2 hours, with random dimensions and a
    latency spread over five orders of magnitude."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        threat, severity = rng.choice(THREATS)
        rows.append(
            evaluation_at(
                organization,
                NOW + timedelta(seconds=rng.randint(-10 * 86400, 2 * 3600)),
                decision=rng.choice(DECISIONS),
                threat_type=threat,
                severity=severity,
                direction=rng.choice(("input", "output")),
                decided_by=rng.choice(("", "signatures", "classifier")),
                application=rng.choice(("", "chat", "search")),
                api_key=rng.choice((None, api_key)),
                latency_ms=round(10 ** rng.uniform(-1.5, 3.5), 3),
                text=rng.choice(TEXTS),
            )
        )
    return rows


@pytest.fixture
def traffic(org_a: Any, org_b: Any, key_a: Any) -> list[Evaluation]:
    rows = spread(org_a, 240, seed=6, api_key=key_a[0])
    spread(org_b, 60, seed=7)
    # Exactly on hour and day boundaries too: the half-open edges must agree.
    for at in (NOW - timedelta(days=2), NOW - timedelta(hours=5), NOW - timedelta(hours=1)):
        rows.append(evaluation_at(org_a, at, latency_ms=7.0, decision="blocked", text=TEXTS[0]))
    return rows


def figures(organization: Any, period: Period) -> dict[str, Any]:
    """Every read of the API on one period."""
    found: dict[str, Any] = {
        f"counts {grouping} {by_bucket}": rollups.evaluation_counts(
            organization, period, group_by=grouping, by_bucket=by_bucket
        )
        for grouping in GROUPINGS
        for by_bucket in (False, True)
    }
    found["patterns"] = rollups.blocked_patterns(organization, period, limit=20)
    return found


def same_counts(found: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    if len(found) != len(expected):
        return False
    for row, want in zip(found, expected, strict=True):
        if {k: v for k, v in row.items() if k != "latency_sum_ms"} != {
            k: v for k, v in want.items() if k != "latency_sum_ms"
        }:
            return False
        if "latency_sum_ms" in want and row["latency_sum_ms"] != pytest.approx(want["latency_sum_ms"], abs=0.01):
            return False
    return True


# --- reads ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "complete_until"),
    [
        # 11:00-12:00 UTC ended less than the grace before NOW; the day of the 10th has not ended.
        ("UTC", (NOW - timedelta(hours=1), datetime(2025, 3, 10, tzinfo=UTC))),
        # Hours of a half-hour zone start at :30 UTC; its days at 18:30 UTC.
        ("Asia/Kolkata", (datetime(2025, 3, 10, 11, 30, tzinfo=UTC), datetime(2025, 3, 9, 18, 30, tzinfo=UTC))),
        # The traffic spans the change to summer time of 9 March: a day of 23 hours.
        ("America/New_York", (NOW - timedelta(hours=1), datetime(2025, 3, 10, 4, tzinfo=UTC))),
    ],
)
def test_every_read_gives_the_same_counts_from_rollups_and_raw_rows(
    org_a: Any, traffic: Any, settings: Any, zone: str, complete_until: tuple[datetime, datetime]
) -> None:
    settings.TIME_ZONE = zone
    raw = {name: figures(org_a, period) for name, period in PERIODS.items()}
    assert not RollupCursor.objects.exists()  # so far, raw rows only

    rollups.rebuild(now=NOW)

    assert rollups.cursors() == dict(zip((Granularity.HOUR, Granularity.DAY), complete_until, strict=True))
    assert EvaluationRollup.objects.filter(granularity=Granularity.DAY).exists()
    for name, period in PERIODS.items():
        found = figures(org_a, period)
        for read, expected in raw[name].items():
            if read == "patterns":
                assert found[read] == expected, (name, read)
            else:
                assert same_counts(found[read], expected), (name, read, found[read], expected)
    in_month = Evaluation.objects.for_org(org_a).filter(created_at__lt=NOW).count()
    assert raw["30 days, aligned (day buckets)"]["counts () False"][0]["count"] == in_month > 200
    # And they did come from the rollups: rolled-up rows deleted since still count.
    assert Evaluation.objects.filter(created_at__lt=NOW - timedelta(days=2)).delete()[0] > 100
    assert rollups.evaluation_counts(org_a, PERIODS["30 days, aligned (day buckets)"])[0]["count"] == in_month


def test_whole_hours_before_the_cursor_are_read_from_rollups_and_the_rest_from_raw_rows(
    org_a: Any, traffic: Any
) -> None:
    period = PERIODS["26 hours, ragged, into the future (hour buckets)"]
    before = rollups.evaluation_counts(org_a, period)[0]["count"]
    rollups.rebuild(now=NOW)
    rolled_hour = (NOW - timedelta(hours=5), NOW - timedelta(hours=4))
    partial_hour = (period.since, NOW - timedelta(hours=23))
    after_cursor = (NOW - timedelta(hours=1), period.until)
    removed = {}
    for start, end in (rolled_hour, partial_hour, after_cursor):
        rows = Evaluation.objects.filter(organization=org_a, created_at__gte=start, created_at__lt=end)
        removed[start] = rows.count()
        rows.delete()
    assert all(removed.values())  # the random rows do fall in each range

    # The rolled-up hour still counts (its rows were rolled up); the raw parts no longer do.
    after = rollups.evaluation_counts(org_a, period)[0]["count"]
    assert after == before - removed[partial_hour[0]] - removed[after_cursor[0]]


def test_latency_percentiles_from_rollups_are_within_half_a_bin(org_a: Any, traffic: Any) -> None:
    rollups.rebuild(now=NOW)
    fractions = (0.0, 0.25, 0.5, 0.95, 0.99, 1.0)
    for name, period in PERIODS.items():
        rows = Evaluation.objects.for_org(org_a).filter(created_at__gte=period.since, created_at__lt=period.until)
        for by_bucket in (False, True):
            exact = percentiles(rows, "latency_ms", fractions, group_by=period.truncate() if by_bucket else None)
            found = rollups.latency_percentiles(org_a, period, fractions, by_bucket=by_bucket)
            assert found.keys() == exact.keys(), (name, by_bucket)
            for key, values in exact.items():
                for fraction, value in values.items():
                    estimate = found[key][fraction]
                    assert value / TOLERANCE - 0.01 <= estimate <= value * TOLERANCE + 0.01, (name, key, fraction)


def test_short_periods_and_periods_without_rollups_have_exact_percentiles(org_a: Any) -> None:
    for latency in (5.0, 1.0, 3.0, 10.0, 7.5, 2.25, 100.0):
        evaluation_at(org_a, NOW - timedelta(hours=30), latency_ms=latency)
    day = Period.ending(NOW, timedelta(days=2))
    assert rollups.latency_percentiles(org_a, day, (0.5, 0.9)) == {None: {0.5: 5.0, 0.9: 46.0}}

    rollups.rebuild(now=NOW)
    estimate = rollups.latency_percentiles(org_a, day, (0.5, 0.9))[None]
    assert estimate != {0.5: 5.0, 0.9: 46.0}  # now from the histogram…
    assert 5.0 / TOLERANCE <= estimate[0.5] <= 5.0 * TOLERANCE  # …within half a bin
    short = Period(NOW - timedelta(hours=31), NOW - timedelta(hours=29))
    assert rollups.latency_percentiles(org_a, short, (0.5,)) == {None: {0.5: 5.0}}


def test_the_sql_bins_match_the_documented_bins(org_a: Any) -> None:
    latencies = [0.0, 0.004, 0.01, 0.0123, 1.0, 1.2, 57.3, 999.9, 119_999.0, 120_000.0, 5_000_000.0]
    for latency in latencies:
        evaluation_at(org_a, NOW, latency_ms=latency)
    found = sorted(
        Evaluation.objects.for_org(org_a).annotate(b=rollups.bin_expression()).values_list("latency_ms", "b")
    )
    assert found == [(latency, rollups.bin_of(latency)) for latency in latencies]
    for latency, index in found:
        low, high = rollups.BINS[index]
        assert low <= latency < high
    assert found[-1][1] == rollups.OVERFLOW_BIN == len(rollups.BINS) - 1


def test_histogram_percentiles_interpolate_between_ranks() -> None:
    one = rollups.bin_of(1.0)
    hundred = rollups.bin_of(100.0)
    found = rollups.histogram_percentiles({one: 1, hundred: 1}, (0.0, 0.5, 1.0))
    middle_one, middle_hundred = math.sqrt(math.prod(rollups.BINS[one])), math.sqrt(math.prod(rollups.BINS[hundred]))
    assert found == {
        0.0: round(middle_one, 2),
        0.5: round((middle_one + middle_hundred) / 2, 2),
        1.0: round(middle_hundred, 2),
    }
    assert rollups.histogram_percentiles({}, (0.5,)) == {}


def test_another_organizations_rows_never_appear(org_a: Any, org_b: Any, traffic: Any) -> None:
    rollups.rebuild(now=NOW)
    period = PERIODS["30 days, aligned (day buckets)"]
    b_rows = Evaluation.objects.for_org(org_b).filter(created_at__lt=NOW)

    assert rollups.evaluation_counts(org_b, period)[0]["count"] == b_rows.count() > 40
    keys = {row["api_key_id"] for row in rollups.evaluation_counts(org_b, period, group_by=["api_key_id"])}
    assert keys == {None}  # organization A's key never shows
    a_hashes = {row["text_hash"] for row in rollups.blocked_patterns(org_a, period, limit=50)}
    b_patterns = rollups.blocked_patterns(org_b, period, limit=50)
    assert sum(row["count"] for row in b_patterns) == b_rows.filter(decision="blocked").count()
    assert {row["text_hash"] for row in b_patterns} <= a_hashes  # same texts, but each counted for its own
    assert sum(p["count"] for p in rollups.blocked_patterns(org_a, period, limit=50)) == (
        Evaluation.objects.for_org(org_a).filter(created_at__lt=NOW, decision="blocked").count()
    )
    other = rollups.latency_percentiles(org_b, period, (1.0,))[None][1.0]
    assert other <= b_rows.order_by("-latency_ms").first().latency_ms * TOLERANCE


def test_nothing_to_count_gives_a_zero_total_and_no_rows(org_a: Any) -> None:
    period = PERIODS["7 days, aligned (hour buckets)"]
    assert rollups.evaluation_counts(org_a, period) == [{"count": 0, "latency_sum_ms": 0.0}]
    assert rollups.evaluation_counts(org_a, period, group_by=["decision"], by_bucket=True) == []
    assert rollups.latency_percentiles(org_a, period) == {}
    assert rollups.blocked_patterns(org_a, period) == []


def test_an_unknown_dimension_is_refused(org_a: Any) -> None:
    with pytest.raises(ValueError, match=r"Unknown dimension.*'text'"):
        rollups.evaluation_counts(org_a, PERIODS["7 days, aligned (hour buckets)"], group_by=["decision", "text"])
    with pytest.raises(ValueError, match="sequence of dimensions"):
        rollups.evaluation_counts(org_a, PERIODS["7 days, aligned (hour buckets)"], group_by="decision")


def test_blocked_patterns_rank_by_count_then_hash(org_a: Any) -> None:
    at = NOW - timedelta(days=2, minutes=30)
    for text, times in (("often", 3), ("twice a", 2), ("twice b", 2), ("once", 1)):
        for _ in range(times):
            evaluation_at(org_a, at, text=text)
    evaluation_at(org_a, at, text="often", decision="allowed")  # not blocked: not counted
    evaluation_at(org_a, NOW - timedelta(minutes=10), text="once")  # after the cursor: raw
    rollups.rebuild(now=NOW)

    found = rollups.blocked_patterns(org_a, PERIODS["7 days, aligned (hour buckets)"], limit=3)

    counts = [row["count"] for row in found]
    assert counts == [3, 2, 2] and found[1]["text_hash"] < found[2]["text_hash"]
    found = rollups.blocked_patterns(org_a, PERIODS["7 days, aligned (hour buckets)"], limit=4)
    assert found[-1]["count"] == 2  # "once" twice now: once rolled up, once raw
    assert {row["threat_type"] for row in found} == {"prompt_injection"}


# --- building ---------------------------------------------------------------------------------------------------


def snapshot() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for model, fields in (
        (EvaluationRollup, ("decision", "api_key_id", "application", "count", "latency_sum_ms")),
        (LatencyRollup, ("bin", "count")),
        (PatternRollup, ("text_hash", "count")),
    ):
        rows += sorted(
            (
                model.__name__,
                str(org),
                granularity,
                bucket,
                *(round(v, 6) if isinstance(v, float) else str(v) for v in rest),
            )
            for org, granularity, bucket, *rest in model.objects.values_list(
                "organization_id", "granularity", "bucket", *fields
            )
        )
    return rows


def test_rebuild_is_idempotent_and_drops_rows_of_deleted_evaluations(org_a: Any, traffic: Any) -> None:
    rollups.rebuild(now=NOW)
    first = snapshot()
    rollups.rebuild(now=NOW)
    assert snapshot() == first and len(first) > 100
    assert RollupCursor.objects.count() == 2

    Evaluation.objects.filter(created_at__lt=NOW - timedelta(days=5)).delete()
    rollups.rebuild(now=NOW)
    oldest = Evaluation.objects.order_by("created_at").first().created_at
    assert not EvaluationRollup.objects.filter(bucket__lt=rollups.floor_day(oldest)).exists()


def test_a_partial_rebuild_recomputes_its_hours_and_days_only(org_a: Any, traffic: Any) -> None:
    rollups.rebuild(now=NOW)
    full = snapshot()
    day = Period(NOW - timedelta(days=4), NOW - timedelta(days=3))
    evaluation_at(org_a, NOW - timedelta(days=4) + timedelta(minutes=5), decision="throttled")
    evaluation_at(org_a, NOW - timedelta(days=6), decision="throttled")  # outside the rebuilt range

    summary = rollups.rebuild(day.since, day.until, now=NOW)

    assert summary["hours"] == 24 and summary["days"] == 2  # the two days the 24 hours touch
    assert len(snapshot()) > len(full)
    throttled = rollups.evaluation_counts(org_a, PERIODS["30 days, aligned (day buckets)"], group_by=["decision"])
    raw = Evaluation.objects.for_org(org_a).filter(decision="throttled", created_at__lt=NOW).count()
    assert {r["decision"]: r["count"] for r in throttled}["throttled"] == raw - 1  # the old one awaits a rebuild
    assert rollups.cursors()[Granularity.HOUR] == NOW - timedelta(hours=1)


def test_rollup_recent_starts_at_the_oldest_evaluation_advances_the_cursor_and_picks_up_new_rows(
    org_a: Any, traffic: Any
) -> None:
    summary = rollups.rollup_recent(now=NOW)
    oldest = Evaluation.objects.order_by("created_at").first().created_at
    assert summary["hours"] == int((NOW - timedelta(hours=1) - rollups.floor_hour(oldest)) / timedelta(hours=1))
    assert summary["complete_until"] == {
        "day": "2025-03-10T00:00:00+00:00",
        "hour": "2025-03-10T11:00:00+00:00",
    }
    assert rollups.rollup_recent(now=NOW)["hours"] == 0  # nothing new

    late = evaluation_at(org_a, NOW + timedelta(hours=1, minutes=10), decision="throttled", application="late")
    summary = rollups.rollup_recent(now=NOW + timedelta(hours=3))
    assert summary["hours"] == 3 and summary["complete_until"]["hour"] == "2025-03-10T14:00:00+00:00"
    hour = EvaluationRollup.objects.get(
        organization=org_a, granularity=Granularity.HOUR, application="late", bucket=NOW + timedelta(hours=1)
    )
    assert (hour.count, hour.decision, hour.latency_sum_ms) == (1, "throttled", late.latency_ms)

    rollups.rollup_recent(now=NOW + timedelta(days=1, hours=1))
    assert rollups.cursors()[Granularity.DAY] == datetime(2025, 3, 11, tzinfo=UTC)
    assert EvaluationRollup.objects.filter(
        granularity=Granularity.DAY, bucket=datetime(2025, 3, 10, tzinfo=UTC), application="late"
    ).exists()


def test_without_any_evaluation_the_rollups_are_complete_up_to_now(db: Any) -> None:
    summary = rollups.rollup_recent(now=NOW)
    assert summary["hours"] == 0
    assert rollups.cursors() == {Granularity.HOUR: NOW - timedelta(hours=1), Granularity.DAY: NOW - timedelta(hours=12)}
    assert rollups.rebuild(now=NOW)["complete_until"]["hour"] == "2025-03-10T11:00:00+00:00"


# --- the command and the job --------------------------------------------------------------------------------------


def run(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("analytics_rollup", *args, stdout=out)
    return json.loads(out.getvalue())


def test_the_command_rolls_up_and_rebuilds_and_prints_a_summary(org_a: Any) -> None:
    hour = rollups.floor_hour(datetime.now(UTC) - timedelta(days=2))
    evaluation_at(org_a, hour + timedelta(minutes=30))

    recent = run()
    assert recent["mode"] == "recent" and recent["rows_written"]["evaluation_rows"] == 2  # its hour and its day
    assert recent["scheduled"] is None

    naive = hour.replace(tzinfo=None).isoformat()  # TIME_ZONE's (UTC) without an offset
    rebuilt = run("--rebuild", "--since", naive, "--until", (hour + timedelta(hours=1)).isoformat())
    assert rebuilt["mode"] == "rebuild" and rebuilt["hours"] == 1 and rebuilt["days"] == 1
    assert EvaluationRollup.objects.filter(granularity=Granularity.HOUR).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rebuild", "--since", "yesterday"], "--since must be an ISO date"),
        (["--rebuild", "--since", "2025-03-02", "--until", "2025-03-01"], "must be before --until"),
        (["--since", "2025-03-01"], "go with --rebuild"),
        (["--rebuild", "--since", "2999-01-01"], "Nothing to rebuild"),
    ],
)
def test_the_command_refuses_bad_arguments(db: Any, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("analytics_rollup", *args, stdout=StringIO())


def test_the_command_cannot_schedule_without_redis(db: Any, settings: Any) -> None:
    settings.JOBS_BACKEND = "thread"
    with pytest.raises(CommandError, match="needs Redis"):
        call_command("analytics_rollup", "--schedule", stdout=StringIO())
    assert jobs.schedule_rollups() is None


@pytest.mark.redis
def test_with_redis_the_job_runs_on_a_worker_and_schedules_its_next_run_once(
    org_a: Any, run_jobs: Any, settings: Any
) -> None:
    import django_rq
    from rq.registry import ScheduledJobRegistry

    settings.ANALYTICS_ROLLUP_INTERVAL_S = 600
    evaluation_at(org_a, datetime.now(UTC) - timedelta(hours=3))
    queue = django_rq.get_queue("default")
    queue.enqueue(jobs.rollup)
    assert run_jobs() == 1
    assert EvaluationRollup.objects.filter(organization=org_a, granularity=Granularity.HOUR).count() == 1

    registry = ScheduledJobRegistry(queue=queue)
    scheduled = registry.get_job_ids()
    assert len(scheduled) == 1 and scheduled[0].startswith(jobs.ROLLUP_JOB_PREFIX)
    when = registry.get_scheduled_time(scheduled[0])
    assert datetime.now(UTC) < when <= datetime.now(UTC) + timedelta(seconds=600)
    assert run(*["--schedule"])["scheduled"] == scheduled[0]  # a second chain merges into the first
    assert registry.get_job_ids() == scheduled
