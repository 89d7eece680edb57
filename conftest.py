"""Project-wide fixtures: healthchecks' three actors, API clients for users and keys, and real job workers.

- alice: admin of organization A          - bob: viewer in organization A
- charlie: admin of organization B only (must get 404/403 for everything of A)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.choices import Role, Scope
from accounts.tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory, UserFactory

PASSWORD = "correct-horse-battery-staple"

# The loopback OpenAI-compatible server (`llm_server`, `llm_server_factory`) for judges and red-team targets.
pytest_plugins = ["evalence.tests.llm_fixtures"]


def redis_available() -> bool:
    return bool(settings.REDIS_URL)


def pytest_report_header(config: Any) -> list[str]:
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    redis = settings.REDIS_URL or "none (tests marked 'redis' are skipped; in-process jobs and channel layer)"
    return [f"evalence: database={db} redis={redis} jobs={settings.JOBS_BACKEND}"]


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if redis_available():
        return
    skip = pytest.mark.skip(reason="needs Redis: REDIS_URL is not set (make test sets it when Redis answers)")
    for item in items:
        if "redis" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_caches() -> None:
    """Each test starts with an empty cache (throttles, rate limits) and, with Redis, empty job queues."""
    from django.core.cache import cache

    cache.clear()
    from firewall import runtime, state

    runtime.reset()
    state.reset_local_state()
    from firewall.detectors import reset_caches

    reset_caches()
    # The bank's per-process indexes (de-duplication, nearest attacks) outlive a test's rolled-back rows otherwise.
    from promptbank import nearest
    from promptbank.pipeline import dedup

    dedup.clear_cache()
    nearest.reset()
    from accounts.authentication import key_cache

    key_cache.clear()  # a remembered key (the demo key's fixed secret, say) would outlive its rolled-back row
    from firewall.engine.breaker import forget_breakers
    from firewall.engine.remote import forget_judges

    forget_breakers()
    forget_judges()
    if redis_available():
        import django_rq

        # The test Redis database (make test uses /10) holds nothing else: start from empty queues and registries.
        django_rq.get_connection("default").flushdb()


@pytest.fixture
def org_a(db: Any) -> Any:
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def org_b(db: Any) -> Any:
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def alice(org_a: Any) -> Any:
    user = UserFactory(email="alice@acme.test", password=PASSWORD)
    MembershipFactory(organization=org_a, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def bob(org_a: Any, alice: Any) -> Any:
    user = UserFactory(email="bob@acme.test", password=PASSWORD)
    MembershipFactory(organization=org_a, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def carol(org_a: Any, alice: Any) -> Any:
    """An analyst of organization A."""
    user = UserFactory(email="carol@acme.test", password=PASSWORD)
    MembershipFactory(organization=org_a, user=user, role=Role.ANALYST)
    return user


@pytest.fixture
def charlie(org_b: Any) -> Any:
    user = UserFactory(email="charlie@globex.test", password=PASSWORD)
    MembershipFactory(organization=org_b, user=user, role=Role.ADMIN)
    return user


ALL_SCOPES = list(Scope.values)


@pytest.fixture
def key_a(org_a: Any) -> tuple[Any, str]:
    """An API key of organization A with every scope, and its secret."""
    key = ApiKeyFactory(organization=org_a, scopes=ALL_SCOPES)
    return key, key._secret


@pytest.fixture
def key_b(org_b: Any) -> tuple[Any, str]:
    key = ApiKeyFactory(organization=org_b, scopes=ALL_SCOPES)
    return key, key._secret


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """`api(user)` for a session-authenticated client, `api(secret=...)` for an API key, `api()` for anonymous."""

    def make(user: Any = None, *, secret: str | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_login(user)
        if secret is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def run_jobs() -> Callable[[], int]:
    """Run queued jobs now: RQ's non-forking SimpleWorker in burst mode with Redis (a real worker, sharing the
    test's database connection), nothing to do in-process (jobs ran inline at commit)."""

    def run() -> int:
        if settings.JOBS_BACKEND != "rq":
            return 0
        import django_rq
        from rq import SimpleWorker

        queues = [django_rq.get_queue(name) for name in settings.JOB_QUEUES]
        waiting = sum(queue.count for queue in queues)
        worker = SimpleWorker(queues, connection=queues[0].connection)
        worker.work(burst=True, with_scheduler=False)
        return waiting - sum(queue.count for queue in queues)

    return run


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright, one per test module (browser tests use `evalence.tests.browser`).

    Per module, not per session: Playwright's sync API keeps an event loop running while it is open, which would
    break the async (websocket) tests that run after a browser module."""
    from evalence.tests.browser import CHROMIUM

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
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    yield page
    context.close()
