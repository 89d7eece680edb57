"""The per-process memory of authenticated API keys: fast on repeat, and never trusting a key for long after it
stops being valid (at once in the process that changed it, within API_KEY_CACHE_S elsewhere)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.authentication import authenticate_key, key_cache
from accounts.models import ApiKey, Organization

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_key_cache() -> None:
    key_cache.clear()


def queries_of(func: Any) -> tuple[Any, int]:
    with CaptureQueriesContext(connection) as queries:
        result = func()
    return result, len(queries)


def test_a_key_is_looked_up_once_then_remembered(key_a: Any) -> None:
    key, secret = key_a

    first, first_queries = queries_of(lambda: authenticate_key(secret))
    again, again_queries = queries_of(lambda: authenticate_key(secret))

    assert first_queries >= 1
    assert again_queries == 0
    assert again.pk == first.pk == key.pk
    assert again.organization.pk == key.organization_id


def test_each_request_gets_its_own_copy_of_the_key_and_organization(key_a: Any) -> None:
    _, secret = key_a
    first = authenticate_key(secret)
    first.scopes = []
    first.organization.name = "changed by a request"

    again = authenticate_key(secret)

    assert again is not first and again.organization is not first.organization
    assert again.scopes != [] and again.organization.name == "Acme"


def test_a_wrong_secret_with_a_known_prefix_is_refused_even_when_the_key_is_remembered(key_a: Any) -> None:
    _, secret = key_a
    authenticate_key(secret)

    with pytest.raises(services.InvalidApiKey):
        authenticate_key(secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB"))


def test_it_refuses_a_key_revoked_in_this_process_at_once(key_a: Any, alice: Any) -> None:
    key, secret = key_a
    authenticate_key(secret)

    services.api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk), actor=alice)

    with pytest.raises(services.InvalidApiKey, match="revoked"):
        authenticate_key(secret)


def test_it_refuses_a_key_whose_organization_is_deleted_at_once(key_a: Any) -> None:
    key, secret = key_a
    authenticate_key(secret)

    Organization.objects.get(pk=key.organization_id).delete()

    with pytest.raises(services.InvalidApiKey):
        authenticate_key(secret)


def test_a_key_revoked_by_another_process_stops_working_within_the_cache_time(key_a: Any, settings: Any) -> None:
    settings.API_KEY_CACHE_S = 0.3
    key, secret = key_a
    authenticate_key(secret)
    # Another process revokes it: this process gets no signal, only the database changes.
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())

    authenticate_key(secret)  # still remembered, for at most API_KEY_CACHE_S
    time.sleep(0.35)
    with pytest.raises(services.InvalidApiKey, match="revoked"):
        authenticate_key(secret)


def test_a_remembered_key_that_expires_is_refused_on_its_expiry(key_a: Any) -> None:
    key, secret = key_a
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(seconds=0.3))
    authenticate_key(secret)

    time.sleep(0.35)

    with pytest.raises(services.InvalidApiKey, match="expired"):
        authenticate_key(secret)


def test_with_no_cache_time_every_call_looks_the_key_up(key_a: Any, settings: Any) -> None:
    settings.API_KEY_CACHE_S = 0
    _, secret = key_a
    authenticate_key(secret)

    _, queries = queries_of(lambda: authenticate_key(secret))

    assert queries >= 1


def test_over_the_api_a_revoked_key_answers_401_on_its_next_call(key_a: Any, alice: Any, api: Any) -> None:
    key, secret = key_a
    client = api(secret=secret)
    assert client.post("/api/v1/firewall/evaluate", {"text": "hello"}, format="json").status_code == 200

    assert api(alice).post(f"/api/v1/accounts/api-keys/{key.pk}/revoke/").status_code == 200

    refused = client.post("/api/v1/firewall/evaluate", {"text": "hello"}, format="json")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] in {"authentication_failed", "not_authenticated"}
