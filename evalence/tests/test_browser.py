"""In a real browser (Playwright driving Debian's headless Chromium): sign in, find the way around, create a key.

`make test` installs Chromium when it is missing and it can (root with apt); elsewhere these tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.choices import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "a-long-browser-passphrase"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not found at {CHROMIUM} (apt install chromium)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Playwright's sync API refuses to start inside a running event loop; Django must allow sync DB access then.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def admin_user(db: Any) -> Any:
    organization = OrganizationFactory(name="Browser Org", slug="browser-org")
    user = UserFactory(email="admin@browser.test", password=PASSWORD)
    MembershipFactory(organization=organization, user=user, role=Role.ADMIN)
    return user


def _sign_in(page: Any, live_server: Any, email: str, password: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_an_admin_signs_in_and_reaches_every_section(page: Any, live_server: Any, admin_user: Any) -> None:
    _sign_in(page, live_server, admin_user.email, PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    assert "Browser Org" in page.content()
    for label, path in [("Prompt bank", "/promptbank/"), ("Firewall", "/firewall/"), ("Red-team testing", "/testing/")]:
        page.get_by_role("link", name=label).first.click()
        page.wait_for_url(f"{live_server.url}{path}")
        assert page.locator("h1").first.inner_text().strip() == label


def test_a_wrong_password_stays_on_the_sign_in_page_with_an_error(page: Any, live_server: Any, admin_user: Any) -> None:
    _sign_in(page, live_server, admin_user.email, "not-the-password")
    assert page.url.startswith(f"{live_server.url}/login/")
    assert "do not match an account" in page.content()


def test_a_new_api_key_secret_is_shown_once(page: Any, live_server: Any, admin_user: Any) -> None:
    _sign_in(page, live_server, admin_user.email, PASSWORD)
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
