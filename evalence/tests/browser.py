"""What every browser test shares: where Chromium is, the marks that skip without it, and signing in.

The `browser` and `page` fixtures live in the root conftest.py; `make test` installs Chromium when it is missing and
it can (root with apt); elsewhere browser tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "a-long-browser-passphrase"

# `pytestmark = BROWSER_MARKS` in a browser test module.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not found at {CHROMIUM} (apt install chromium)"),
]


def sign_in(page: Any, live_server: Any, email: str, password: str = PASSWORD) -> None:
    """Submit the sign-in form and wait until the answer has loaded (the caller checks where it landed).

    Reading the page while the POST is still in flight gives an empty document, so the wait is here, once.
    """
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
