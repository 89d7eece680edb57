"""The overview page: figures of the active organization only, charts that link to the rows they count, range
errors, empty states, plotly.js served from the installed package, and a query count that does not grow with rows."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.finders import STATIC_PATH, plotly_package_data
from analytics.tests.helpers import evaluation_at, session_at
from promptbank.tests.factories import PromptFactory
from testing.choices import Verdict
from testing.tests import factories as testing_factories

OVERVIEW = "/"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def figure(response: Any, key: str) -> dict[str, Any]:
    """The figure of one chart, read back from its json_script island as the browser would."""
    html = response.content.decode()
    found = re.search(rf'<script id="figure-{key}" type="application/json">(.*?)</script>', html, re.S)
    assert found, f"no figure island for {key}"
    return json.loads(found.group(1))


def trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in fig["data"] if t["name"] == name)


def populate(organization: Any, n: int, first: int = 0) -> dict[str, Any]:
    """n of everything the page counts, for organization (numbered from `first`, to add more later)."""
    now = timezone.now()
    made: dict[str, Any] = {"evaluations": [], "sessions": []}
    for i in range(first, first + n):
        at = now - timedelta(hours=1 + i)
        made["evaluations"] += [
            evaluation_at(organization, at, text=f"attack {i}", decision="blocked", latency_ms=10.0 + i),
            evaluation_at(organization, at, text=f"pii {i}", decision="sanitized", threat_type="pii", severity="low"),
            evaluation_at(organization, at, text=f"hello {i}", decision="allowed", threat_type="none", severity="none"),
        ]
        target = testing_factories.TargetFactory(organization=organization, name=f"Target {i} of {organization.slug}")
        session = session_at(organization, at, target=target)
        prompt = PromptFactory(organization=organization)
        for verdict in (Verdict.SUCCEEDED, Verdict.RESISTED):
            testing_factories.TestResultFactory(
                organization=organization, session=session, prompt=prompt, verdict=verdict, completed_at=at
            )
        testing_factories.TestResultFactory(
            organization=organization, session=session, prompt=prompt, category="jailbreak", verdict=Verdict.BLOCKED
        )
        made["sessions"].append(session)
    return made


# --- the page -----------------------------------------------------------------------------------------------------


def test_the_overview_is_the_home_page_and_needs_a_sign_in(client: Client) -> None:
    assert reverse("analytics:overview") == OVERVIEW
    assert client.get(OVERVIEW)["Location"] == f"{reverse('accounts:login')}?next=/"


def test_a_viewer_sees_the_figures_of_the_last_seven_days_by_default(org_a: Any, bob: Any) -> None:
    populate(org_a, 2)
    evaluation_at(org_a, timezone.now() - timedelta(days=8), decision="blocked")  # before the default range

    response = signed_in(bob).get(OVERVIEW)

    assert response.status_code == 200
    period = response.context["period"]
    assert (period.preset, period.span) == ("7d", timedelta(days=7))
    cards = {card["key"]: card["value"] for card in response.context["kpi_cards"]}
    assert cards["evaluations"] == "6"
    assert cards["blocked"] == "2"
    assert cards["block_rate"] == "33.3%"
    assert cards["sessions"] == "2"
    assert cards["attack_success"] == "33.3%"  # 1 succeeded of 3 scored (a resisted and a blocked one)
    assert cards["bank_size"] == "2"
    html = response.content.decode()
    assert 'data-kpi="evaluations"' in html
    for key in ("evaluations", "threats", "latency", "attack-success", "patterns", "prompts"):
        assert figure(response, key)["data"], key
    assert 'class="nav-link is-active" href="/"' in html


def test_the_page_draws_with_plotly_served_from_this_site(org_a: Any, bob: Any) -> None:
    populate(org_a, 1)

    html = signed_in(bob).get(OVERVIEW).content.decode()

    assert '<script src="/static/vendor/plotly.min.js" defer></script>' in html
    assert '<script src="/static/js/charts.js" defer></script>' in html
    assert "cdn" not in html.lower()


def test_a_preset_range_narrows_every_figure(org_a: Any, bob: Any) -> None:
    now = timezone.now()
    evaluation_at(org_a, now - timedelta(minutes=20), decision="blocked")
    evaluation_at(org_a, now - timedelta(hours=3), decision="blocked")

    response = signed_in(bob).get(OVERVIEW, {"range": "1h"})

    assert response.context["period"].bucket == "minute"
    assert response.context["kpis"]["evaluations"] == 1
    evaluations = figure(response, "evaluations")
    assert sum(trace(evaluations, "Blocked")["y"]) == 1
    assert evaluations["layout"]["yaxis"]["dtick"] == 1  # whole evaluations on a small scale


def test_a_custom_range_counts_between_its_bounds(org_a: Any, bob: Any) -> None:
    now = timezone.now().replace(microsecond=0)
    evaluation_at(org_a, now - timedelta(days=40))
    evaluation_at(org_a, now - timedelta(days=50))
    since, until = (now - timedelta(days=45)).isoformat(), (now - timedelta(days=35)).isoformat()

    response = signed_in(bob).get(OVERVIEW, {"range": "custom", "since": since, "until": until})

    assert response.status_code == 200
    assert response.context["kpis"]["evaluations"] == 1
    assert response.context["period"].bucket == "day"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"range": "custom"}, "since", "A custom range needs a start."),
        ({"range": "custom", "since": "2025-03-10T12:00", "until": "2025-03-09T12:00"}, "until", "Until must be after"),
        ({"range": "custom", "since": "2024-01-01T00:00", "until": "2024-06-01T00:00"}, "until", "at most 92 days"),
        ({"range": "custom", "since": "2025-03-10T12:00", "until": "2025-03-10T12:01"}, "until", "at least 5 minutes"),
        ({"range": "custom", "since": "not a date"}, "since", "Enter a valid date/time."),
        ({"range": "2y"}, "range", "Select a valid choice."),
        ({"until": "2025-03-10T12:00"}, "since", "A custom range needs a start."),
    ],
)
def test_an_invalid_range_shows_the_error_and_no_figures(
    org_a: Any, bob: Any, params: dict[str, str], field: str, message: str
) -> None:
    response = signed_in(bob).get(OVERVIEW, params)

    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field])
    html = response.content.decode()
    assert message in html
    assert "Fix the time range to see the figures" in html
    assert "kpi_cards" not in response.context
    assert "plotly.min.js" not in html


def test_a_range_in_the_future_is_refused(org_a: Any, bob: Any) -> None:
    since = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    until = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")

    response = signed_in(bob).get(OVERVIEW, {"range": "custom", "since": since, "until": until})

    assert response.status_code == 400
    assert "From is in the future" in response.content.decode()


def test_an_empty_organization_sees_how_to_send_its_first_evaluation(org_a: Any, bob: Any) -> None:
    response = signed_in(bob).get(OVERVIEW)
    html = response.content.decode()

    assert response.status_code == 200
    assert "No evaluations in this range — send one with curl:" in html
    assert "curl -X POST http://testserver/api/v1/firewall/evaluate " in html
    assert "No completed test session yet" in html
    assert "No attack succeeded in the tests completed in this range." in html
    assert 'type="application/json"' not in html
    assert "plotly.min.js" not in html  # nothing to draw: the 4 MB script is not loaded
    assert {card["key"]: card["value"] for card in response.context["kpi_cards"]}["block_rate"] == "—"


def test_clean_traffic_has_its_own_empty_threats_message(org_a: Any, bob: Any) -> None:
    evaluation_at(org_a, timezone.now() - timedelta(hours=1), decision="allowed", threat_type="none", severity="none")

    html = signed_in(bob).get(OVERVIEW).content.decode()

    assert "No threats in this range: every evaluation was clean." in html
    assert "No blocked attacks in this range." in html
    assert 'id="figure-evaluations"' in html


# --- charts link to their rows ------------------------------------------------------------------------------------


def test_a_decision_bar_opens_exactly_the_evaluations_it_counts(org_a: Any, org_b: Any, bob: Any) -> None:
    populate(org_a, 3)
    populate(org_b, 2)
    client = signed_in(bob)
    blocked = trace(figure(client.get(OVERVIEW, {"range": "24h"}), "evaluations"), "Blocked")

    for count, url in zip(blocked["y"], blocked["customdata"], strict=True):
        assert urlsplit(url).path == reverse("firewall:index")
        assert parse_qs(urlsplit(url).query)["decision"] == ["blocked"]
        listed = client.get(url)
        assert listed.status_code == 200
        assert listed.context["page_obj"].paginator.count == count


def test_threat_and_pattern_bars_open_their_evaluations(org_a: Any, bob: Any) -> None:
    populate(org_a, 2)
    client = signed_in(bob)
    response = client.get(OVERVIEW)

    low = trace(figure(response, "threats"), "Low")
    assert low["x"] == ["PII"] and low["y"] == [2]
    assert client.get(low["customdata"][0]).context["page_obj"].paginator.count == 2
    patterns = figure(response, "patterns")["data"][0]
    assert patterns["x"] == [1, 1]
    for url in patterns["customdata"]:
        assert client.get(url).context["page_obj"].paginator.count == 1


def test_an_attack_success_bar_opens_the_sessions_results_of_its_category(org_a: Any, bob: Any) -> None:
    made = populate(org_a, 2)
    client = signed_in(bob)
    fig = figure(client.get(OVERVIEW), "attack-success")

    assert [t["name"] for t in fig["data"]] == ["Target 0 of acme", "Target 1 of acme"]
    first = fig["data"][0]
    assert first["x"] == ["Jailbreak", "Prompt injection"]
    assert first["y"] == [0.0, 50.0]
    assert first["customdata"][1] == f"/testing/sessions/{made['sessions'][0].pk}/?category=prompt_injection"
    assert client.get(first["customdata"][1]).context["page_obj"].paginator.count == 2


def test_user_text_in_a_chart_is_escaped_for_plotly(org_a: Any, bob: Any) -> None:
    target = testing_factories.TargetFactory(organization=org_a, name="<b>bold</b> & co")
    session = session_at(org_a, timezone.now(), target=target)
    testing_factories.TestResultFactory(organization=org_a, session=session)

    fig = figure(signed_in(bob).get(OVERVIEW), "attack-success")

    assert fig["data"][0]["name"] == "&lt;b&gt;bold&lt;/b&gt; &amp; co"


# --- tenancy and cost ---------------------------------------------------------------------------------------------


def test_a_member_of_another_organization_sees_none_of_its_rows(org_a: Any, charlie: Any, bob: Any) -> None:
    made = populate(org_a, 2)

    response = signed_in(charlie).get(OVERVIEW)
    html = response.content.decode()

    assert response.status_code == 200
    assert response.context["kpis"]["evaluations"] == 0
    assert response.context["kpis"]["bank_size"] == 0
    assert "Globex" in html and "Acme" not in html
    for row in made["evaluations"]:
        assert row.text_hash[:12] not in html
    for session in made["sessions"]:
        assert str(session.pk) not in html
        assert session.target.name not in html


def test_the_page_costs_the_same_queries_whatever_the_rows(org_a: Any, bob: Any) -> None:
    client = signed_in(bob)
    populate(org_a, 1)
    client.get(OVERVIEW)  # warm the session and per-process caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(OVERVIEW).status_code == 200
    populate(org_a, 6, first=1)
    with CaptureQueriesContext(connection) as many:
        assert client.get(OVERVIEW).status_code == 200

    assert len(many) == len(few)
    assert len(few) <= 25, "\n".join(q["sql"] for q in few.captured_queries)


# --- plotly.js, locally -------------------------------------------------------------------------------------------


def test_plotly_js_is_found_in_the_installed_package() -> None:
    found = finders.find(STATIC_PATH)

    assert found is not None
    assert Path(found) == plotly_package_data() / "plotly.min.js"
    assert finders.find("js/charts.js") is not None


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_whitenoise_serves_plotly_js(db: Any) -> None:
    response = Client().get(f"/static/{STATIC_PATH}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith(("text/javascript", "application/javascript"))
    body = b"".join(response.streaming_content)
    assert body == (plotly_package_data() / "plotly.min.js").read_bytes()


def test_collectstatic_publishes_plotly_js_and_nothing_else_of_the_package(tmp_path: Path) -> None:
    with override_settings(STATICFILES_FINDERS=["analytics.finders.PlotlyFinder"], STATIC_ROOT=str(tmp_path)):
        call_command("collectstatic", interactive=False, verbosity=0)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [STATIC_PATH]
