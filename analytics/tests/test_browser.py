"""The overview in headless Chromium: charts.js draws the server's figures with the local plotly.js, and a click on a
bar opens the filtered list behind it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from accounts.choices import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from analytics.tests.helpers import evaluation_at
from evalence.tests.browser import BROWSER_MARKS, PASSWORD, sign_in

pytestmark = BROWSER_MARKS


@pytest.fixture
def viewer(transactional_db: Any) -> Any:
    org = OrganizationFactory(name="Chart Org", slug="chart-org")
    user = UserFactory(email="viewer@charts.test", password=PASSWORD)
    MembershipFactory(organization=org, user=user, role=Role.VIEWER)
    now = timezone.now()
    for minutes in (10, 20, 30):
        evaluation_at(org, now - timedelta(minutes=minutes), decision="blocked")
    evaluation_at(org, now - timedelta(minutes=15), decision="allowed", threat_type="none", severity="none")
    return user


def test_the_overview_draws_its_charts_and_a_bar_opens_its_evaluations(
    page: Any, live_server: Any, viewer: Any
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live_server, viewer.email)
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/?range=1h")
    chart = page.locator('[data-chart="figure-evaluations"]')
    chart.locator(".main-svg").first.wait_for()
    assert chart.get_attribute("data-chart-ready") == "true"
    assert page.locator("[data-chart] .main-svg").count() >= 4  # evaluations, threats, latency, patterns
    # The colours came from the stylesheet, not the literal "var(--danger)".
    fill = chart.locator(".trace.bars .point path").last.evaluate("el => getComputedStyle(el).fill")
    assert fill.startswith("rgb(")

    # Plotly may still resize the chart to its card after the first draw, moving the bars: measure the bar again
    # before each click until the click lands.
    for attempt in range(4):
        box = chart.locator(".trace.bars").last.locator(".point path").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            page.wait_for_url("**/firewall/?**", timeout=5000)
            break
        except PlaywrightTimeout:
            if attempt == 3:
                raise

    assert "decision=blocked" in page.url
    assert page.locator('[data-testid="evaluation-total"]').inner_text().startswith("1 evaluation")
    assert errors == []
