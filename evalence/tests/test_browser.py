"""In a real browser (Playwright driving Debian's headless Chromium): sign in, find the way around, create a key.

`make test` installs Chromium when it is missing and it can (root with apt); elsewhere these tests skip and say why.
"""

from __future__ import annotations

from typing import Any

import pytest

from accounts.choices import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from evalence.tests.browser import BROWSER_MARKS, PASSWORD, sign_in

pytestmark = BROWSER_MARKS


@pytest.fixture
def admin_user(db: Any) -> Any:
    organization = OrganizationFactory(name="Browser Org", slug="browser-org")
    user = UserFactory(email="admin@browser.test", password=PASSWORD)
    MembershipFactory(organization=organization, user=user, role=Role.ADMIN)
    return user


def test_an_admin_signs_in_and_reaches_every_section(page: Any, live_server: Any, admin_user: Any) -> None:
    sign_in(page, live_server, admin_user.email, PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    assert "Browser Org" in page.content()
    for label, path in [("Prompt bank", "/promptbank/"), ("Firewall", "/firewall/"), ("Red-team testing", "/testing/")]:
        page.get_by_role("link", name=label).first.click()
        page.wait_for_url(f"{live_server.url}{path}")
        assert page.locator("h1").first.inner_text().strip() == label


def test_a_wrong_password_stays_on_the_sign_in_page_with_an_error(page: Any, live_server: Any, admin_user: Any) -> None:
    sign_in(page, live_server, admin_user.email, "not-the-password")
    page.get_by_text("do not match an account").wait_for(timeout=10000)
    assert page.url.startswith(f"{live_server.url}/login/")


def test_a_new_api_key_secret_is_shown_once(page: Any, live_server: Any, admin_user: Any) -> None:
    sign_in(page, live_server, admin_user.email, PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/settings/api-keys/")
    page.fill("input[name=name]", "browser-ci")
    page.check("input[name=scopes][value=read]")
    page.click("text=Create key")
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("ev_")
    page.reload()
    assert page.locator("#new-key-secret").count() == 0
    assert "browser-ci" in page.content()


def test_the_api_docs_load_without_a_request_leaving_the_machine(page: Any, live_server: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("text=/api/v1/accounts/api-keys/", timeout=15000)
    assert requested, "the page made no requests at all"
    elsewhere = [url for url in requested if not url.startswith(live_server.url) and not url.startswith("data:")]
    assert not elsewhere, f"/api/docs/ fetched from other hosts: {elsewhere}"
