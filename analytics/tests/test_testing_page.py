"""The testing analytics page: attack success by category over each target's sessions, the rate's trend, findings by
mutator and the regressions between the last two sessions. Figures count the rows, every point opens a list of the
same count, another organization sees nothing, bad input is refused, and the query count does not grow with rows."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.testing_charts import asr_trend_figure
from analytics.tests.helpers import session_at
from testing.choices import SessionStatus, Verdict
from testing.tests import factories as testing_factories

PAGE = "/analytics/testing/"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def figure(response: Any, key: str) -> dict[str, Any]:
    """One chart's figure, read back from its json_script island as the browser would."""
    html = response.content.decode()
    found = re.search(rf'<script id="figure-{key}" type="application/json">(.*?)</script>', html, re.S)
    assert found, f"no figure island for {key}"
    return json.loads(found.group(1))


def trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in fig["data"] if t["name"] == name)


def listed(client: Client, url: str) -> int:
    """How many rows the list behind a link shows."""
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["page_obj"].paginator.count


def add(session: Any, verdict: str, n: int = 1, **fields: Any) -> None:
    for _ in range(n):
        testing_factories.TestResultFactory(
            organization=session.organization, session=session, verdict=verdict, **fields
        )


def two_sessions(organization: Any, name: str = "Support bot") -> dict[str, Any]:
    """A target with two completed sessions (2 and 1 hours ago) and known counts:

    first:  prompt injection 1 succeeded, 1 resisted (original); jailbreak 1 blocked, 1 error (base64)
    second: prompt injection 2 succeeded (one original, one base64), 1 resisted (base64); jailbreak 1 succeeded (rot13)
    """
    now = timezone.now()
    target = testing_factories.TargetFactory(organization=organization, name=name)
    first = session_at(organization, now - timedelta(hours=2), target=target, name=f"{name} run 1")
    second = session_at(organization, now - timedelta(hours=1), target=target, name=f"{name} run 2")
    add(first, Verdict.SUCCEEDED, category="prompt_injection")
    add(first, Verdict.RESISTED, category="prompt_injection")
    add(first, Verdict.BLOCKED, category="jailbreak", mutator="base64")
    add(first, Verdict.ERROR, category="jailbreak", mutator="base64")
    add(second, Verdict.SUCCEEDED, category="prompt_injection")
    add(second, Verdict.SUCCEEDED, category="prompt_injection", mutator="base64")
    add(second, Verdict.RESISTED, category="prompt_injection", mutator="base64")
    add(second, Verdict.SUCCEEDED, category="jailbreak", mutator="rot13")
    return {"target": target, "first": first, "second": second}


# --- access -----------------------------------------------------------------------------------------------------------


def test_the_page_needs_a_sign_in(client: Client) -> None:
    assert reverse("analytics:testing") == PAGE
    assert client.get(PAGE)["Location"] == f"{reverse('accounts:login')}?next={PAGE}"


def test_a_viewer_sees_the_charts_with_plotly_and_the_analytics_sub_nav(org_a: Any, bob: Any) -> None:
    two_sessions(org_a)

    response = signed_in(bob).get(PAGE)
    html = response.content.decode()

    assert response.status_code == 200
    assert response.context["period"].preset == "7d"
    for key in ("asr-trend", "categories-1", "mutators"):
        assert figure(response, key)["data"], key
    assert '<script src="/static/vendor/plotly.min.js" defer></script>' in html
    assert 'href="/analytics/firewall/"' in html and f'href="{reverse("analytics:overview")}"' in html


# --- the figures count the rows and open lists of the same count ------------------------------------------------------


def test_the_category_lines_count_each_sessions_rows_and_open_its_successful_attacks(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)
    client = signed_in(bob)

    fig = figure(client.get(PAGE), "categories-1")

    injection, jailbreak = trace(fig, "Prompt injection"), trace(fig, "Jailbreak")
    assert injection["y"] == [50.0, 66.7]  # 1 of 2, then 2 of 3
    assert jailbreak["y"] == [0.0, 100.0]  # the error is not scored: 0 of 1, then 1 of 1
    assert "1 of 2 scored attacks succeeded<br>95% CI 9.4\u201390.5%" in injection["text"][0]
    assert "2 of 3 scored attacks succeeded" in injection["text"][1]
    first_url = injection["customdata"][0]
    assert urlsplit(first_url).path == reverse("testing:session_detail", args=[made["first"].pk])
    assert parse_qs(urlsplit(first_url).query) == {
        "kind": ["attack"],
        "verdict": ["succeeded"],
        "category": ["prompt_injection"],
    }
    assert [listed(client, url) for url in injection["customdata"]] == [1, 2]
    assert [listed(client, url) for url in jailbreak["customdata"]] == [0, 1]


def test_the_trend_shows_each_sessions_overall_rate_and_the_overview_can_use_it(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)
    other = two_sessions(org_a, name="Sales bot")
    add(other["second"], Verdict.RESISTED, 2, category="jailbreak")
    client = signed_in(bob)

    response = client.get(PAGE)
    fig = figure(response, "asr-trend")

    assert [t["name"] for t in fig["data"]] == ["Sales bot", "Support bot"]
    support = trace(fig, "Support bot")
    assert support["y"] == [33.3, 75.0]  # 1 of 3 scored, then 3 of 4
    assert trace(fig, "Sales bot")["y"] == [33.3, 50.0]  # 3 of 6 with the two extra resisted
    assert [listed(client, url) for url in support["customdata"]] == [1, 3]
    assert str(made["second"].pk) in support["customdata"][1]
    # The builder the overview can call gives the same figure.
    assert asr_trend_figure(org_a, response.context["period"]) == fig


def test_findings_by_mutator_add_up_over_the_sessions_and_open_the_latest_sessions_rows(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)
    client = signed_in(bob)

    response = client.get(PAGE)
    bars = figure(response, "mutators")["data"][0]

    # Highest rate first: rot13 1/1, original 2/3, base64 1/3 (its error not scored).
    assert bars["x"] == ["ROT13", "Original (no mutator)", "Base64"]
    assert bars["y"] == [100.0, 66.7, 33.3]
    assert "over 2 sessions" in bars["text"][2]
    for url in bars["customdata"]:
        assert urlsplit(url).path == reverse("testing:session_detail", args=[made["second"].pk])
    assert parse_qs(urlsplit(bars["customdata"][1]).query)["mutator"] == ["original"]
    # The latest session's successes of the mutator: rot13 1, original 1, base64 1; the list shows only those rows.
    assert [listed(client, url) for url in bars["customdata"]] == [1, 1, 1]
    rows = {row["mutator"]: row for row in response.context["page"].mutator_rows}
    assert (rows["base64"]["succeeded"], rows["base64"]["scored"], rows["base64"]["sessions"]) == (1, 3, 2)
    assert rows[""]["latest"]["succeeded"] == 1


def test_the_original_filter_lists_only_unmutated_rows(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)
    client = signed_in(bob)
    url = reverse("testing:session_detail", args=[made["second"].pk])

    assert listed(client, f"{url}?mutator=original") == 1
    assert listed(client, f"{url}?mutator=base64") == 2
    assert listed(client, url) == 4


def test_the_range_and_the_status_select_the_sessions(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)
    old = session_at(org_a, timezone.now() - timedelta(days=10), target=made["target"])
    running = session_at(org_a, timezone.now() - timedelta(minutes=30), target=made["target"])
    running.status = SessionStatus.RUNNING
    running.save(update_fields=["status"])
    add(old, Verdict.SUCCEEDED, category="prompt_injection")
    add(running, Verdict.SUCCEEDED, category="prompt_injection")
    client = signed_in(bob)

    assert [s.pk for s in client.get(PAGE).context["page"].sessions] == [made["first"].pk, made["second"].pk]
    month = client.get(PAGE, {"range": "30d"}).context["page"].sessions
    assert [s.pk for s in month] == [old.pk, made["first"].pk, made["second"].pk]
    hour = client.get(PAGE, {"range": "custom", "since": (timezone.now() - timedelta(minutes=90)).isoformat()})
    assert [s.pk for s in hour.context["page"].sessions] == [made["second"].pk]


def test_picking_a_target_shows_only_its_sessions(org_a: Any, bob: Any) -> None:
    support = two_sessions(org_a)
    two_sessions(org_a, name="Sales bot")
    client = signed_in(bob)

    everything = client.get(PAGE)
    only = client.get(PAGE, {"target": str(support["target"].pk)})

    assert len(everything.context["page"].target_charts) == 2
    assert [t["name"] for t in figure(only, "asr-trend")["data"]] == ["Support bot"]
    assert [c.title for c in only.context["page"].target_charts] == ["Support bot: attack success by category"]
    assert [row["target"].name for row in only.context["page"].regressions] == ["Support bot"]
    assert f'<option value="{support["target"].pk}" selected>Support bot</option>' in only.content.decode()


# --- regressions ------------------------------------------------------------------------------------------------------


def test_regressions_compare_the_last_two_sessions_of_each_target(org_a: Any, bob: Any) -> None:
    now = timezone.now()
    target = testing_factories.TargetFactory(organization=org_a, name="Support bot")
    oldest = session_at(org_a, now - timedelta(hours=5), target=target)
    base = session_at(org_a, now - timedelta(hours=3), target=target, name="base")
    head = session_at(org_a, now - timedelta(hours=1), target=target, name="head")
    add(oldest, Verdict.SUCCEEDED, prompt_text="never compared")

    def item(session: Any, text: str, verdict: str, category: str = "prompt_injection", **fields: Any) -> None:
        add(session, verdict, prompt_text=text, category=category, **fields)

    item(base, "still", Verdict.SUCCEEDED)
    item(head, "still", Verdict.SUCCEEDED)
    item(base, "fixed", Verdict.SUCCEEDED, category="jailbreak")
    item(head, "fixed", Verdict.RESISTED, category="jailbreak")
    item(base, "new", Verdict.RESISTED)
    item(head, "new", Verdict.SUCCEEDED)
    item(base, "unknown", Verdict.SUCCEEDED, mutator="base64")
    item(head, "unknown", Verdict.ERROR, mutator="base64")  # an error is neither fixed nor failing
    client = signed_in(bob)

    response = client.get(PAGE)
    [row] = response.context["page"].regressions

    assert (row["base"].pk, row["head"].pk) == (base.pk, head.pk)
    assert row["counts"] == {"new_findings": 1, "fixed": 1, "still_failing": 1}
    assert (row["base_rate"], row["head_rate"], row["delta"]) == ("75.0%", "66.7%", "-8.3 pp")
    categories = {c["category"]: c for c in row["categories"]}
    assert (categories["prompt_injection"]["base"], categories["prompt_injection"]["head"]) == ("66.7%", "100.0%")
    assert categories["prompt_injection"]["worse"] and not categories["jailbreak"]["worse"]
    assert [f["prompt_text"] for f in row["new_findings"]] == ["new"]
    html = response.content.decode()
    assert f'data-regression="{target.pk}"' in html
    compared = client.get(row["compare_url"])
    assert compared.status_code == 200
    assert compared.context["comparison"]["counts"] == row["counts"]


def test_a_target_with_one_session_has_no_regression_row(org_a: Any, bob: Any) -> None:
    target = testing_factories.TargetFactory(organization=org_a)
    add(session_at(org_a, timezone.now() - timedelta(hours=1), target=target), Verdict.SUCCEEDED)

    response = signed_in(bob).get(PAGE)

    assert response.context["page"].regressions == []
    assert "No target has two completed sessions yet" in response.content.decode()


# --- tenancy, bad input, empty state, cost -------------------------------------------------------------------------


def test_another_organization_sees_none_of_its_targets_or_sessions(org_a: Any, charlie: Any) -> None:
    made = two_sessions(org_a)
    client = signed_in(charlie)

    response = client.get(PAGE)
    html = response.content.decode()

    assert response.status_code == 200
    assert response.context["page"].sessions == [] and response.context["page"].regressions == []
    assert "Support bot" not in html and "Acme" not in html
    for session in (made["first"], made["second"]):
        assert str(session.pk) not in html
    assert client.get(PAGE, {"target": str(made["target"].pk)}).status_code == 404


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"target": "not-a-uuid"}, "target", "Enter a valid UUID."),
        ({"range": "2y"}, "range", "Select a valid choice."),
        ({"range": "custom"}, "since", "A custom range needs a start."),
    ],
)
def test_a_malformed_range_or_target_is_a_400_with_the_error(
    org_a: Any, bob: Any, params: dict[str, str], field: str, message: str
) -> None:
    two_sessions(org_a)

    response = signed_in(bob).get(PAGE, params)

    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field])
    html = response.content.decode()
    assert "Fix the range or the target to see the figures" in html
    assert "plotly.min.js" not in html


def test_an_unknown_target_is_a_404(org_a: Any, bob: Any) -> None:
    assert signed_in(bob).get(PAGE, {"target": "00000000-0000-4000-8000-000000000000"}).status_code == 404


def test_an_organization_without_sessions_is_told_how_to_run_one(org_a: Any, bob: Any) -> None:
    pending = session_at(org_a, timezone.now() - timedelta(hours=1), status=SessionStatus.QUEUED)
    add(pending, Verdict.PENDING)

    response = signed_in(bob).get(PAGE)
    html = response.content.decode()

    assert response.status_code == 200
    assert 'data-testid="testing-empty"' in html
    assert "python manage.py run_suite --org acme --target NAME --suite NAME --wait" in html
    assert f'href="{reverse("testing:index")}"' in html
    assert 'type="application/json"' not in html and "plotly.min.js" not in html


def test_user_text_in_a_chart_is_escaped_for_plotly(org_a: Any, bob: Any) -> None:
    two_sessions(org_a, name="<b>bold</b> & co")

    fig = figure(signed_in(bob).get(PAGE), "asr-trend")

    assert fig["data"][0]["name"] == "&lt;b&gt;bold&lt;/b&gt; &amp; co"


def test_the_page_costs_the_same_queries_whatever_the_rows(org_a: Any, bob: Any) -> None:
    made = [two_sessions(org_a), two_sessions(org_a, name="Sales bot")]
    client = signed_in(bob)
    client.get(PAGE)  # warm the session and per-process caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(PAGE).status_code == 200
    for found in made:
        for session in (found["first"], found["second"]):
            for category in ("prompt_injection", "jailbreak", "data_extraction"):
                add(session, Verdict.SUCCEEDED, 4, category=category, mutator="hex")
                add(session, Verdict.RESISTED, 3, category=category)
    with CaptureQueriesContext(connection) as many:
        assert client.get(PAGE).status_code == 200

    assert len(many) == len(few)
    assert len(few) <= 40, "\n".join(q["sql"] for q in few.captured_queries)


# --- axes and links for few sessions --------------------------------------------------------------------------------


def test_sessions_within_a_day_get_a_time_axis_of_days_and_rates_have_room_above_100(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)  # an hour apart
    lone = testing_factories.TargetFactory(organization=org_a, name="Zeta bot")
    only = session_at(org_a, timezone.now() - timedelta(hours=3), target=lone)
    add(only, Verdict.SUCCEEDED, category="jailbreak")  # 100 %
    response = signed_in(bob).get(PAGE)

    for key, shown in (("categories-1", [made["first"], made["second"]]), ("categories-2", [only])):
        layout = figure(response, key)["layout"]
        start, end = (datetime.fromisoformat(value) for value in layout["xaxis"]["range"])
        first = min(timezone.localtime(s.created_at) for s in shown).replace(tzinfo=None, microsecond=0)
        last = max(timezone.localtime(s.created_at) for s in shown).replace(tzinfo=None, microsecond=0)
        assert (first - start, end - last) == (timedelta(days=1), timedelta(days=1)), key
        assert layout["xaxis"]["dtick"] == 24 * 60 * 60 * 1000  # a tick per day, not per millisecond
        low, high = layout["yaxis"]["range"]
        assert low < 0 and high > 100  # a point at 0 or 100 % is drawn whole
    assert figure(response, "categories-2")["data"][0]["y"] == [100.0]


def test_sessions_days_apart_keep_plotlys_own_time_axis(org_a: Any, bob: Any) -> None:
    target = testing_factories.TargetFactory(organization=org_a, name="Support bot")
    for days in (6, 2):
        add(session_at(org_a, timezone.now() - timedelta(days=days), target=target), Verdict.SUCCEEDED)

    layout = figure(signed_in(bob).get(PAGE), "categories-1")["layout"]

    assert "range" not in layout["xaxis"] and "dtick" not in layout["xaxis"]


def test_a_mutator_without_success_in_the_latest_session_links_the_latest_session_with_some(
    org_a: Any, bob: Any
) -> None:
    made = two_sessions(org_a)
    add(made["first"], Verdict.SUCCEEDED, 2, category="jailbreak", mutator="hex")
    add(made["second"], Verdict.RESISTED, category="jailbreak", mutator="hex")
    add(made["second"], Verdict.SUCCEEDED, category="jailbreak", mutator="base64")
    client = signed_in(bob)

    response = client.get(PAGE)
    bars = figure(response, "mutators")["data"][0]
    rows = {row["mutator"]: row for row in response.context["page"].mutator_rows}
    hex_bar = bars["x"].index("Hex")

    # Hex: 2 successes in the first session, none in the latest: the bar and the row open the first's 2.
    assert str(made["first"].pk) in bars["customdata"][hex_bar]
    assert listed(client, bars["customdata"][hex_bar]) == 2
    assert "the 2 successful in the latest with any (none in the latest)" in bars["text"][hex_bar]
    assert rows["hex"]["url"] == bars["customdata"][hex_bar]
    assert rows["hex"]["link_label"].startswith("2 successful on ")
    # Base64 succeeded in the latest session: its link stays there, and says how many it lists.
    assert str(made["second"].pk) in rows["base64"]["url"]
    assert listed(client, rows["base64"]["url"]) == 2
    assert rows["base64"]["link_label"] == "Latest session's 2 successful"
    assert f'href="{rows["hex"]["url"]}"'.replace("&", "&amp;") in response.content.decode()


def test_a_mutator_that_never_succeeded_links_the_latest_session_and_says_none(org_a: Any, bob: Any) -> None:
    made = two_sessions(org_a)
    add(made["first"], Verdict.RESISTED, category="jailbreak", mutator="hex")
    client = signed_in(bob)

    rows = {row["mutator"]: row for row in client.get(PAGE).context["page"].mutator_rows}

    assert str(made["first"].pk) in rows["hex"]["url"]  # the only session that ran it
    assert rows["hex"]["link_label"] == "Latest session's 0 successful"
    assert listed(client, rows["hex"]["url"]) == 0
