"""The history generator (`analytics.generate`), its command and the analytics seed step, at small sizes."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum
from django.utils import timezone

from analytics import generate
from analytics import seed as analytics_seed
from analytics.models import EvaluationRollup
from firewall.engine.normalize import normalize
from firewall.engine.pipeline import text_hash
from firewall.engine.policy import Verdict as PolicyVerdict
from firewall.engine.policy import decided_by
from firewall.models import Evaluation, ThreatPatternSighting
from promptbank import mutators
from testing.choices import ResultKind, SessionStatus, Verdict
from testing.models import Target, TestResult, TestSession

pytestmark = pytest.mark.django_db

EVALUATIONS = 3000
RESULTS = 800


@pytest.fixture
def history(org_a: Any, org_b: Any) -> generate.HistorySummary:
    return generate.history_generate(
        organization=org_a, evaluations=EVALUATIONS, results=RESULTS, days=14, seed=3, targets=2
    )


def test_it_writes_the_counts_asked_for_that_organization_only(history: Any, org_a: Any, org_b: Any) -> None:
    assert Evaluation.objects.for_org(org_a).count() == EVALUATIONS
    assert TestResult.objects.for_org(org_a).count() == RESULTS
    assert TestSession.objects.for_org(org_a).count() == history.sessions == 4  # 2 targets, one a week
    assert Target.objects.for_org(org_a).count() == 2
    for model in (Evaluation, TestResult, TestSession, Target, ThreatPatternSighting):
        assert not model.objects.for_org(org_b).exists()
    assert (history.evaluations, history.results, history.targets) == (EVALUATIONS, RESULTS, 2)


def test_rows_lie_in_the_period_with_more_traffic_by_day_than_by_night(history: Any, org_a: Any) -> None:
    now = timezone.now()
    times = list(Evaluation.objects.for_org(org_a).values_list("created_at", flat=True))
    assert min(times) >= now - timedelta(days=14, minutes=5)
    assert max(times) <= now
    local_hours = Counter(timezone.localtime(t).hour for t in times)
    afternoon = sum(local_hours[h] for h in range(12, 17))
    night = sum(local_hours[h] for h in range(1, 6))
    assert afternoon > 2 * night


def test_every_decision_is_present_in_about_the_designed_mix(history: Any, org_a: Any) -> None:
    decisions = Counter(Evaluation.objects.for_org(org_a).values_list("decision", flat=True))
    assert set(decisions) == {"allowed", "blocked", "sanitized", "throttled"}
    share = {decision: count / EVALUATIONS for decision, count in decisions.items()}
    assert 0.80 < share["allowed"] < 0.90
    assert 0.07 < share["blocked"] < 0.13
    assert 0.02 < share["sanitized"] < 0.06
    assert 0.002 < share["throttled"] < 0.025


def test_threat_types_and_severities_follow_the_decision(history: Any, org_a: Any) -> None:
    rows = Evaluation.objects.for_org(org_a)
    blocked = rows.filter(decision="blocked")
    assert not blocked.filter(threat_type="none").exists()
    assert not blocked.filter(severity="none").exists()
    assert not blocked.filter(decided_by="").exists()
    sanitized = rows.filter(decision="sanitized")
    assert set(sanitized.values_list("threat_type", flat=True)) <= {"pii", "secret"}
    assert not sanitized.filter(sanitized_text__isnull=True).exists()
    assert all("[REDACTED" in text for text in sanitized.values_list("sanitized_text", flat=True))
    assert set(rows.filter(decision="throttled").values_list("decided_by", flat=True)) == {"rate_limit"}
    clean = rows.filter(decision="allowed", threat_type="none")
    assert set(clean.values_list("decided_by", flat=True)) == {""}
    assert set(clean.values_list("severity", flat=True)) == {"none"}
    # Near misses: allowed with their threat recorded, as the policy's flag threshold does.
    assert rows.filter(decision="allowed").exclude(threat_type="none").exists()


def test_decided_by_is_what_the_policy_would_say_of_the_stored_detectors(history: Any, org_a: Any) -> None:
    rows = Evaluation.objects.for_org(org_a).exclude(decision="throttled").exclude(threat_type="none")
    checked = 0
    for row in rows.iterator():
        verdict = PolicyVerdict(row.decision, row.policy_decision, row.confidence, row.threat_type, row.severity)
        assert decided_by(verdict, row.detectors) == row.decided_by, row.text[:60]
        checked += 1
    assert checked > 300


def test_text_hash_is_the_engine_key_of_the_normalized_text(history: Any, org_a: Any) -> None:
    rows = Evaluation.objects.for_org(org_a).values_list("text", "text_hash").distinct()
    assert len(rows) > 20
    for text, stored in rows:
        assert stored == text_hash(normalize(text).text)


def test_blocked_attacks_group_into_top_patterns_and_feed_threat_patterns(history: Any, org_a: Any) -> None:
    blocked = Evaluation.objects.for_org(org_a).filter(decision="blocked").exclude(decided_by="rate_limit")
    by_hash = Counter(blocked.values_list("text_hash", flat=True))
    top_count = by_hash.most_common(1)[0][1]
    assert top_count >= 5 * (len(blocked) / len(by_hash))  # a skewed ranking, not a flat one
    sightings = ThreatPatternSighting.objects.for_org(org_a)
    assert sightings.aggregate(n=Sum("count"))["n"] == history.blocked == blocked.count()
    assert {s.pattern.pattern_hash for s in sightings.select_related("pattern")} == set(by_hash)


def test_some_blocked_or_sanitized_rows_carry_false_positive_feedback(history: Any, org_a: Any) -> None:
    feedback = Evaluation.objects.for_org(org_a).filter(feedback="false_positive")
    assert feedback.exists()
    assert set(feedback.values_list("decision", flat=True)) <= {"blocked", "sanitized"}
    assert not feedback.filter(feedback_at__isnull=True).exists()


def test_traffic_comes_from_a_few_keys_and_applications(history: Any, org_a: Any) -> None:
    rows = Evaluation.objects.for_org(org_a)
    assert rows.values("api_key").distinct().count() == 3
    assert set(rows.values_list("application", flat=True)) == {"helpdesk", "chat", "search", "checkout"}
    assert all(row["metadata"]["application"] for row in rows.values_list("context", flat=True)[:50])
    latencies = sorted(rows.values_list("latency_ms", flat=True))
    median = latencies[len(latencies) // 2]
    assert 1.0 <= median <= 3.0
    assert latencies[int(len(latencies) * 0.999)] > 3 * median  # a tail


def test_sessions_have_results_summaries_and_counts(history: Any, org_a: Any) -> None:
    sessions = TestSession.objects.for_org(org_a)
    assert set(sessions.values_list("status", flat=True)) == {SessionStatus.COMPLETED}
    known_mutators = {"", *mutators.MUTATORS}
    for session in sessions:
        results = TestResult.objects.filter(session=session)
        assert results.count() == session.total_samples == session.completed_samples == sum(session.counts.values())
        assert results.filter(kind=ResultKind.BASELINE).exists()
        assert set(results.values_list("mutator", flat=True)) <= known_mutators
        assert len(set(results.values_list("mutator", flat=True))) > 3
        assert session.summary["total"] == results.filter(kind=ResultKind.ATTACK).count()
        assert session.summary["attack_success_rate"] is not None
        assert set(session.summary["by_category"]) == set(
            results.filter(kind=ResultKind.ATTACK).values_list("category", flat=True)
        )
        assert session.started_at < session.finished_at
        assert not results.filter(verdict=Verdict.PENDING).exists()


def test_success_rates_drift_over_sessions_per_target(history: Any, org_a: Any) -> None:
    rates: dict[str, list[float]] = {}
    for session in TestSession.objects.for_org(org_a).order_by("created_at").select_related("target"):
        rates.setdefault(session.target.name, []).append(session.summary["attack_success_rate"])
    improving, regressing = (rates[name] for name in generate.TARGET_NAMES[:2])
    assert improving[0] > improving[-1]  # getting safer
    assert regressing[-1] > regressing[-2]  # a regression between the last two sessions


def test_the_same_seed_gives_the_same_history(org_a: Any, org_b: Any) -> None:
    for org in (org_a, org_b):
        generate.history_generate(organization=org, evaluations=300, results=0, days=3, seed=11)
    fields = ("decision", "threat_type", "text_hash", "latency_ms")
    a = sorted(Evaluation.objects.for_org(org_a).values_list(*fields))
    b = sorted(Evaluation.objects.for_org(org_b).values_list(*fields))
    assert a == b


def test_it_rebuilds_the_rollups_over_the_generated_rows(org_a: Any) -> None:
    summary = generate.history_generate(organization=org_a, evaluations=400, results=0, days=2, seed=5)
    assert summary.rollups == "rebuilt"
    rolled = EvaluationRollup.objects.for_org(org_a).filter(granularity="hour").aggregate(n=Sum("count"))["n"]
    last_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    complete = Evaluation.objects.for_org(org_a).filter(created_at__lt=last_hour).count()
    assert rolled == complete > 300


@pytest.mark.parametrize(("field", "value"), [("evaluations", -1), ("results", -5), ("days", 0), ("targets", 0)])
def test_the_service_refuses_bad_sizes(org_a: Any, field: str, value: int) -> None:
    from evalence.errors import ValidationFailed

    arguments = {"evaluations": 1, "results": 1, "days": 1, "targets": 1, field: value}
    with pytest.raises(ValidationFailed, match=field):
        generate.history_generate(organization=org_a, **arguments)
    assert not Evaluation.objects.for_org(org_a).exists()


# --- the command --------------------------------------------------------------------------------------------------


def test_the_command_prints_a_one_line_json_summary(org_a: Any) -> None:
    out = io.StringIO()
    call_command(
        "analytics_generate", "--org", org_a.slug, "--evaluations", "250", "--results", "60", "--days", "3",
        "--targets", "1", stdout=out,
    )  # fmt: skip
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert (summary["organization"], summary["evaluations"], summary["results"]) == (org_a.slug, 250, 60)
    assert Evaluation.objects.for_org(org_a).count() == 250
    assert TestResult.objects.for_org(org_a).count() == 60


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--org", "nope", "--evaluations", "1", "--results", "0"], "No organization with slug 'nope'"),
        (["--org", "acme", "--evaluations", "-3", "--results", "0"], "evaluations must be"),
        (["--org", "acme", "--evaluations", "1", "--results", "-1"], "results must be"),
        (["--org", "acme", "--evaluations", "1", "--results", "0", "--days", "0"], "days must be"),
    ],
)
def test_the_command_fails_with_one_readable_line(org_a: Any, arguments: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message) as raised:
        call_command("analytics_generate", *arguments, stdout=io.StringIO())
    assert "\n" not in str(raised.value)
    assert not Evaluation.objects.exists()


# --- the seed step ------------------------------------------------------------------------------------------------


def test_the_seed_step_adds_the_history_once(org_a: Any, alice: Any, settings: Any) -> None:
    from accounts.management.commands.seed_demo import DemoContext

    settings.DEMO_HISTORY_EVALUATIONS = 500
    settings.DEMO_HISTORY_RESULTS = 240
    said: list[str] = []
    demo = DemoContext(
        organization=org_a, admin=alice, analyst=alice, password="x", api_key=None, api_key_secret="", say=said.append
    )  # type: ignore[arg-type]
    analytics_seed.run(demo)
    counts = (
        Evaluation.objects.for_org(org_a).count(),
        TestSession.objects.for_org(org_a).count(),
        TestResult.objects.for_org(org_a).count(),
    )
    assert counts == (500, 12, 240)
    assert "500 evaluations and 12 sessions" in said[0]
    assert EvaluationRollup.objects.for_org(org_a).exists()

    analytics_seed.run(demo)
    assert (
        Evaluation.objects.for_org(org_a).count(),
        TestSession.objects.for_org(org_a).count(),
        TestResult.objects.for_org(org_a).count(),
    ) == counts
    assert "already there" in said[-1]


def test_sessions_are_named_as_a_person_would_and_marked_generated_in_their_config(history: Any, org_a: Any) -> None:
    for session in TestSession.objects.for_org(org_a).select_related("target", "suite"):
        assert session.name.startswith(f"Weekly regression · {session.target.name} · ")
        assert "generated" not in session.name.casefold() and "→" not in session.name
        assert session.config["generated"] is True
        assert session.suite.name == "Weekly regression"


def test_about_half_the_attacks_go_through_the_banks_mutators_with_rates_that_differ(history: Any, org_a: Any) -> None:
    attacks = TestResult.objects.for_org(org_a).filter(kind=ResultKind.ATTACK)
    by_mutator = Counter(attacks.values_list("mutator", flat=True))
    assert 0.35 < by_mutator[""] / attacks.count() < 0.65
    assert set(by_mutator) == {"", *mutators.MUTATORS}  # every registered mutator is used
    for result in attacks.exclude(mutator="")[:50]:
        assert result.prompt_text == mutators.apply(result.mutator, result.original_text, seed=result.sequence)
    # The mutators' own effects: role play gets through more often than reversal, over the same prompts.
    scored = attacks.filter(verdict__in=[Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED])

    def rate(mutator: str) -> float:
        rows = scored.filter(mutator=mutator)
        return rows.filter(verdict=Verdict.SUCCEEDED).count() / rows.count()

    assert rate("role_play") > rate("") > rate("reversal")
