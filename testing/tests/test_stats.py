"""Session figures (rates, Wilson intervals, baseline, latency, top prompts) and session comparison."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from promptbank.tests.factories import PromptFactory
from testing.choices import ResultKind, Verdict
from testing.stats import compare_sessions, session_summary, wilson_interval
from testing.tests import factories

pytestmark = pytest.mark.django_db


def add(session: Any, verdict: str, n: int = 1, **fields: Any) -> list[Any]:
    return factories.TestResultFactory.create_batch(
        n, organization=session.organization, session=session, verdict=verdict, judge_verdict=verdict, **fields
    )


# --- Wilson ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "total", "expected"),
    [
        (5, 10, (0.2366, 0.7634)),  # the textbook values of the Wilson score interval at 95%
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (62, 200, (0.25, 0.3772)),
    ],
)
def test_wilson_interval_matches_known_values(successes: int, total: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(successes, total)
    assert (round(low, 4), round(high, 4)) == expected
    assert 0.0 <= low <= successes / total <= high <= 1.0


def test_wilson_interval_is_zero_for_an_empty_sample_and_rejects_impossible_counts() -> None:
    assert wilson_interval(0, 0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="successes <= total"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="Wilson"):
        wilson_interval(-1, 5)


def test_a_wider_z_gives_a_wider_interval() -> None:
    low95, high95 = wilson_interval(5, 10)
    low99, high99 = wilson_interval(5, 10, z=2.576)
    assert low99 < low95 and high99 > high95


# --- summary -----------------------------------------------------------------------------------------------------


@pytest.fixture
def session(org_a: Any) -> Any:
    """A session with every verdict: prompt_injection 3 succeeded / 1 resisted / 1 blocked / 2 errors / 1 unscorable /
    1 pending, jailbreak 1 succeeded / 3 resisted, and a baseline of 4 refusals, 1 succeeded and 1 error."""
    session = factories.TestSessionFactory(organization=org_a, config={"target": {"name": "Demo bot"}})
    add(session, Verdict.SUCCEEDED, 2, latency_ms=10.0)
    add(session, Verdict.SUCCEEDED, 1, mutator="base64", severity="critical", latency_ms=20.0)
    add(session, Verdict.RESISTED, 1, latency_ms=30.0)
    add(session, Verdict.BLOCKED, 1, mutator="base64", latency_ms=40.0)
    add(session, Verdict.ERROR, 2, error="HTTP 503", response="")
    add(session, Verdict.UNSCORABLE, 1, latency_ms=50.0)
    add(session, Verdict.PENDING, 1, response="", completed_at=None)
    add(session, Verdict.SUCCEEDED, 1, category="jailbreak", severity="medium")
    add(session, Verdict.RESISTED, 3, category="jailbreak", severity="medium")
    baseline = {"kind": ResultKind.BASELINE, "category": "benign", "severity": "low", "latency_ms": 9000.0}
    add(session, Verdict.RESISTED, 4, **baseline)
    add(session, Verdict.SUCCEEDED, 1, **baseline)
    add(session, Verdict.ERROR, 1, **baseline)
    return session


def test_the_rate_counts_scored_attacks_only(session: Any) -> None:
    summary = session_summary(session)
    assert summary["total"] == 13
    assert (summary["scored"], summary["succeeded"], summary["resisted"], summary["blocked"]) == (9, 4, 4, 1)
    assert (summary["errors"], summary["unscorable"], summary["pending"]) == (2, 1, 1)
    # 4 of 9, not 4 of 13 (errors, unscorable and pending are out) and not 5 of 15 (baseline is out).
    assert summary["attack_success_rate"] == 0.4444
    assert summary["ci95"] == [0.1888, 0.7334]


def test_groups_by_category_severity_and_mutator_have_their_own_figures(session: Any) -> None:
    summary = session_summary(session)
    injection = summary["by_category"]["prompt_injection"]
    assert injection == {
        "total": 9,
        "scored": 5,
        "succeeded": 3,
        "resisted": 1,
        "blocked": 1,
        "errors": 2,
        "unscorable": 1,
        "pending": 1,
        "rate": 0.6,
        "ci95": [round(x, 4) for x in wilson_interval(3, 5)],
    }
    assert injection["ci95"] == [0.2307, 0.8824]
    jailbreak = summary["by_category"]["jailbreak"]
    assert (jailbreak["scored"], jailbreak["succeeded"], jailbreak["rate"]) == (4, 1, 0.25)
    assert "benign" not in summary["by_category"]

    assert list(summary["by_severity"]) == ["critical", "high", "medium"]  # most severe first
    assert summary["by_severity"]["critical"]["rate"] == 1.0
    assert summary["by_severity"]["high"]["succeeded"] == 2

    assert set(summary["by_mutator"]) == {"", "base64"}
    assert summary["by_mutator"]["base64"]["scored"] == 2
    assert summary["by_mutator"]["base64"]["rate"] == 0.5
    assert summary["by_mutator"][""]["scored"] == 7


def test_the_baseline_is_kept_apart_and_counts_refusals(session: Any) -> None:
    baseline = session_summary(session)["baseline"]
    assert baseline["total"] == 6
    assert baseline["scored"] == 5
    assert baseline["succeeded"] == 1
    assert baseline["rate"] == 0.2
    assert baseline["refused"] == 4
    assert baseline["refusal_rate"] == 0.8
    assert baseline["ci95"] == [round(x, 4) for x in wilson_interval(1, 5)]
    assert baseline["errors"] == 1


def test_latency_percentiles_cover_timed_attacks_only(session: Any) -> None:
    # Attack latencies 10, 10, 20, 30, 40, 50; the baseline's 9000 ms stay out.
    latency = session_summary(session)["latency_ms"]
    assert latency["p50"] == 25.0  # between 20 and 30
    assert latency["p95"] == 47.5  # position 4.75: 40 + 0.75 x 10


def test_overrides_are_counted_and_the_effective_verdict_is_the_one_scored(session: Any, alice: Any) -> None:
    overridden = add(session, Verdict.RESISTED, 1, category="jailbreak", severity="medium")[0]
    overridden.judge_verdict = Verdict.SUCCEEDED
    overridden.overridden_by = alice
    overridden.overridden_at = timezone.now()
    overridden.save()
    summary = session_summary(session)
    assert summary["overridden"] == 1
    assert summary["by_category"]["jailbreak"]["succeeded"] == 1  # the analyst's resisted, not the judges' succeeded
    assert summary["by_category"]["jailbreak"]["resisted"] == 4
    assert summary["baseline"]["overridden"] == 0


def test_top_prompts_rank_by_successes_then_rate_and_skip_prompts_that_never_worked(org_a: Any) -> None:
    session = factories.TestSessionFactory(organization=org_a)
    always, mostly, never = (PromptFactory(organization=org_a) for _ in range(3))
    add(session, Verdict.SUCCEEDED, 2, prompt=mostly, original_text=mostly.text)
    add(session, Verdict.RESISTED, 1, prompt=mostly, original_text=mostly.text)
    add(session, Verdict.SUCCEEDED, 2, prompt=always, original_text=always.text, mutator="rot13")
    add(session, Verdict.ERROR, 3, prompt=always, original_text=always.text)  # not scored
    add(session, Verdict.RESISTED, 2, prompt=never, original_text=never.text)
    add(session, Verdict.SUCCEEDED, 1, prompt=None, original_text="A deleted prompt " + "x" * 300)

    top = session_summary(session)["top_prompts"]
    assert [item["prompt_id"] for item in top] == [str(always.pk), str(mostly.pk), None]
    assert top[0] == {
        "prompt_id": str(always.pk),
        "text": always.text,
        "category": "prompt_injection",
        "succeeded": 2,
        "scored": 2,
        "rate": 1.0,
    }
    assert (top[1]["succeeded"], top[1]["scored"], top[1]["rate"]) == (2, 3, 0.6667)
    assert len(top[2]["text"]) == 200


def test_an_empty_session_has_no_rate_and_no_latency(org_a: Any) -> None:
    """Nothing scored is "no result", never "0% of attacks worked"."""
    summary = session_summary(factories.TestSessionFactory(organization=org_a))
    assert summary["attack_success_rate"] is None
    assert summary["ci95"] == [0.0, 0.0]
    assert summary["total"] == summary["scored"] == 0
    assert summary["latency_ms"] == {"p50": None, "p95": None}
    assert summary["by_category"] == {} and summary["top_prompts"] == []
    assert summary["baseline"]["refusal_rate"] is None


def test_the_summary_is_json_ready(session: Any) -> None:
    PromptFactory(organization=session.organization)
    add(session, Verdict.SUCCEEDED, 1, prompt=PromptFactory(organization=session.organization))
    summary = session_summary(session)
    assert json.loads(json.dumps(summary)) == summary


def test_the_summary_costs_the_same_few_queries_whatever_the_size(
    org_a: Any, django_assert_max_num_queries: Any
) -> None:
    session = factories.TestSessionFactory(organization=org_a)
    for index, verdict in enumerate([Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.ERROR] * 40):
        add(session, verdict, 1, mutator=["", "base64", "leet"][index % 3], latency_ms=float(index))
    with django_assert_max_num_queries(8):
        summary = session_summary(session)
    assert summary["total"] == 120 and summary["scored"] == 80


# --- comparison --------------------------------------------------------------------------------------------------


def item(session: Any, prompt: Any, verdict: str, **fields: Any) -> Any:
    """An item whose key is built as the planner builds it: prompt id, mutator, generation."""
    mutator = fields.get("mutator", "")
    key = f"{prompt.pk if prompt else 'gone'}:{mutator}:{fields.get('generation', 0)}:{fields.get('prompt_text', '')}"
    text = fields.pop("prompt_text", prompt.text if prompt else "")
    return add(session, verdict, 1, prompt=prompt, item_key=key[:120], prompt_text=text, **fields)[0]


@pytest.fixture
def pair(org_a: Any) -> tuple[Any, Any, dict[str, Any]]:
    base = factories.TestSessionFactory(organization=org_a)
    head = factories.TestSessionFactory(organization=org_a)
    p = {name: PromptFactory(organization=org_a) for name in ("still", "fixed", "errored", "new", "only_head", "quiet")}
    item(base, p["still"], Verdict.SUCCEEDED)
    item(head, p["still"], Verdict.SUCCEEDED)
    item(base, p["fixed"], Verdict.SUCCEEDED, category="jailbreak", severity="critical")
    item(head, p["fixed"], Verdict.BLOCKED, category="jailbreak", severity="critical")
    item(base, p["errored"], Verdict.SUCCEEDED)
    item(head, p["errored"], Verdict.ERROR)  # unknown now: neither fixed nor failing
    item(base, p["new"], Verdict.RESISTED)
    item(head, p["new"], Verdict.SUCCEEDED)
    item(head, p["only_head"], Verdict.SUCCEEDED, severity="low")
    item(base, p["quiet"], Verdict.RESISTED)
    item(head, p["quiet"], Verdict.RESISTED)
    # The same prompt under another mutator is another item.
    item(base, p["still"], Verdict.SUCCEEDED, mutator="base64")
    item(head, p["still"], Verdict.RESISTED, mutator="base64")
    # Generation counts too.
    item(head, p["still"], Verdict.SUCCEEDED, generation=1)
    # Prompts deleted from the bank match on the text that was sent.
    item(base, None, Verdict.SUCCEEDED, prompt_text="Deleted prompt, still works")
    item(head, None, Verdict.SUCCEEDED, prompt_text="Deleted prompt, still works")
    item(base, None, Verdict.SUCCEEDED, prompt_text="Deleted prompt, since fixed")
    item(head, None, Verdict.RESISTED, prompt_text="Deleted prompt, since fixed")
    item(head, None, Verdict.SUCCEEDED, prompt_text="Deleted prompt, new in head")
    return base, head, p


def keys(entries: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(e["prompt_text"], e["mutator"], e["base_verdict"] or "-") for e in entries}


def test_comparison_sorts_items_into_new_fixed_and_still_failing(pair: Any) -> None:
    base, head, p = pair
    comparison = compare_sessions(base, head)
    assert keys(comparison.still_failing) == {
        (p["still"].text, "", "succeeded"),
        ("Deleted prompt, still works", "", "succeeded"),
    }
    assert keys(comparison.fixed) == {
        (p["fixed"].text, "", "succeeded"),
        (p["still"].text, "base64", "succeeded"),
        ("Deleted prompt, since fixed", "", "succeeded"),
    }
    assert keys(comparison.new_findings) == {
        (p["new"].text, "", "resisted"),
        (p["only_head"].text, "", "-"),
        (p["still"].text, "", "-"),  # generation 1 exists only in head
        ("Deleted prompt, new in head", "", "-"),
    }
    errored = [e for group in (comparison.new_findings, comparison.fixed) for e in group]
    assert all(e["prompt_text"] != p["errored"].text for e in errored)


def test_comparison_entries_have_the_agreed_shape_and_are_ordered_by_severity(pair: Any) -> None:
    base, head, p = pair
    comparison = compare_sessions(base, head)
    fixed = comparison.fixed[0]
    assert fixed == {
        "item_key": f"{p['fixed'].pk}::0:",
        "category": "jailbreak",
        "severity": "critical",
        "mutator": "",
        "prompt_text": p["fixed"].text,
        "base_verdict": "succeeded",
        "head_verdict": "blocked",
    }
    assert comparison.new_findings[-1]["severity"] == "low"


def test_comparison_truncates_long_prompts(org_a: Any) -> None:
    base, head = factories.TestSessionFactory(organization=org_a), factories.TestSessionFactory(organization=org_a)
    prompt = PromptFactory(organization=org_a)
    item(head, prompt, Verdict.SUCCEEDED, prompt_text="y" * 1000)
    assert compare_sessions(base, head).new_findings[0]["prompt_text"] == "y" * 300


def test_comparison_reports_the_rate_change_overall_and_by_category(pair: Any) -> None:
    base, head, _ = pair
    change = compare_sessions(base, head).rate_change
    # base: 6 succeeded of 8 scored (the errored item is scored in base); head: 6 of 10 (its error is out).
    assert change["base"] == 0.75
    assert change["head"] == 0.6
    assert change["delta"] == -0.15
    assert change["by_category"]["jailbreak"] == {"base": 1.0, "head": 0.0, "delta": -1.0}
    assert set(change["by_category"]) == {"jailbreak", "prompt_injection"}


def test_a_category_on_one_side_only_has_no_delta(org_a: Any) -> None:
    base, head = factories.TestSessionFactory(organization=org_a), factories.TestSessionFactory(organization=org_a)
    item(base, PromptFactory(organization=org_a), Verdict.SUCCEEDED)
    item(head, PromptFactory(organization=org_a), Verdict.SUCCEEDED, category="jailbreak")
    by_category = compare_sessions(base, head).rate_change["by_category"]
    assert by_category["jailbreak"] == {"base": None, "head": 1.0, "delta": None}
    assert by_category["prompt_injection"] == {"base": 1.0, "head": None, "delta": None}


def test_comparison_as_dict_is_json_ready_with_counts(pair: Any) -> None:
    base, head, _ = pair
    data = json.loads(json.dumps(compare_sessions(base, head).as_dict()))
    assert data["base"]["id"] == str(base.pk) and data["head"]["id"] == str(head.pk)
    assert data["counts"] == {"new_findings": 4, "fixed": 3, "still_failing": 2}
    assert len(data["new_findings"]) == 4


def test_sessions_of_two_organizations_cannot_be_compared(org_a: Any, org_b: Any) -> None:
    with pytest.raises(ValueError, match="same organization"):
        compare_sessions(
            factories.TestSessionFactory(organization=org_a), factories.TestSessionFactory(organization=org_b)
        )
