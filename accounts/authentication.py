"""DRF authentication by API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

A key that authenticated is remembered by this process for API_KEY_CACHE_S seconds (by the hash of its secret, never
the secret), so the firewall's hot path does not look it up on every call: building and running that query cost about
as much CPU as the firewall's engine. Each request gets its own copy of the key and its organization. Revoking,
rotating, changing or deleting a key (or its organization) forgets it at once in the process that made the change;
other processes stop accepting it within API_KEY_CACHE_S seconds. Expiry is checked on every request.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts import services
from accounts.models import ApiKey, Organization, hash_secret

MAX_CACHED_KEYS = 10_000


class _KeyCache:
    """Keys that authenticated recently, by secret hash, each until its deadline (a thread-safe dict)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, secret_hash: str) -> ApiKey | None:
        entry = self._entries.get(secret_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            with self._lock:
                self._entries.pop(secret_hash, None)
            return None
        return _copy(entry[1])

    def put(self, secret_hash: str, key: ApiKey, ttl_s: float) -> None:
        with self._lock:
            if len(self._entries) >= MAX_CACHED_KEYS:
                self._entries.clear()  # a flood of distinct keys: start over rather than grow without bound
            self._entries[secret_hash] = (time.monotonic() + ttl_s, _copy(key))

    def forget(self, *, key_id: Any = None, organization_id: Any = None) -> None:
        with self._lock:
            for secret_hash, (_, key) in list(self._entries.items()):
                if key.pk == key_id or key.organization_id == organization_id:
                    del self._entries[secret_hash]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _copy(key: ApiKey) -> ApiKey:
    """A key and organization of their own: a request may cache related rows on them, or change them."""
    organization = copy.copy(key.organization)
    key = copy.copy(key)
    key.organization = organization
    return key


key_cache = _KeyCache()


def authenticate_key(raw: str) -> ApiKey:
    """`accounts.services.api_key_authenticate`, remembered for API_KEY_CACHE_S seconds (0: never remembered)."""
    ttl_s = settings.API_KEY_CACHE_S
    if ttl_s <= 0:
        return services.api_key_authenticate(raw)
    secret_hash = hash_secret(raw.strip())
    key = key_cache.get(secret_hash)
    if key is None:
        key = services.api_key_authenticate(raw)
        key_cache.put(secret_hash, key, ttl_s)
    elif key.is_expired:
        raise services.InvalidApiKey("This API key has expired.")
    return key


def _forget_key(sender: type, instance: ApiKey, **kwargs: Any) -> None:
    key_cache.forget(key_id=instance.pk)


def _forget_organization(sender: type, instance: Organization, **kwargs: Any) -> None:
    key_cache.forget(organization_id=instance.pk)


post_save.connect(_forget_key, sender=ApiKey, dispatch_uid="accounts.authentication.saved_key")
post_delete.connect(_forget_key, sender=ApiKey, dispatch_uid="accounts.authentication.deleted_key")
post_save.connect(_forget_organization, sender=Organization, dispatch_uid="accounts.authentication.saved_organization")
post_delete.connect(
    _forget_organization, sender=Organization, dispatch_uid="accounts.authentication.deleted_organization"
)


class ApiKeyUser:
    """The principal behind an API key: authenticated, never staff, tied to the key's organization."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.email = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.email

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        raw = request.headers.get("X-API-Key", "")
        if not raw:
            header = request.headers.get("Authorization", "")
            if not header:
                return None
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            raw = value
        if not raw.strip():
            raise AuthenticationFailed("Empty API key.")
        try:
            key = authenticate_key(raw)
        except services.InvalidApiKey as exc:
            raise AuthenticationFailed(str(exc)) from None
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
