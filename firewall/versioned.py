"""Per-process copies of things built from the database (compiled signatures, remote judges, similarity indexes),
kept in step across processes by a version stamp in Django's shared cache.

A process trusts its copy for FIREWALL_REFRESH_S seconds, then reads the stamp once: the same stamp keeps the copy,
a new one rebuilds it. A change calls `bump`, which writes a new stamp (every other process rebuilds at its next
check) and drops this process's copy at once. When the cache has lost the stamp, a fresh one is written, so every
process rebuilds once rather than trusting a copy nobody can vouch for.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.core.cache import cache


class VersionedCache:
    """Built values by key; `stamp_key` is a format string with `{}` for one stamp per key, or a fixed key for one stamp
    shared by all keys."""

    def __init__(self, stamp_key: str):
        self.stamp_key = stamp_key
        self._per_key = "{}" in stamp_key
        self._items: dict[Hashable, tuple[str, Any, float]] = {}  # key → (stamp, value, checked at)
        self._lock = threading.Lock()

    def _key_of(self, key: Hashable) -> str:
        return self.stamp_key.format(key) if self._per_key else self.stamp_key

    def _stamp(self, key: Hashable) -> str:
        stamp_key = self._key_of(key)
        stamp = cache.get(stamp_key)
        if stamp is None:
            cache.add(stamp_key, uuid.uuid4().hex, timeout=None)
            stamp = cache.get(stamp_key) or ""
        return str(stamp)

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        item = self._items.get(key)
        if item is not None and time.monotonic() - item[2] < settings.FIREWALL_REFRESH_S:
            return item[1]
        with self._lock:
            item = self._items.get(key)
            now = time.monotonic()
            if item is not None and now - item[2] < settings.FIREWALL_REFRESH_S:
                return item[1]
            stamp = self._stamp(key)
            if item is not None and item[0] == stamp:
                self._items[key] = (stamp, item[1], now)
                return item[1]
            value = build()
            self._items[key] = (stamp, value, time.monotonic())
            return value

    def bump(self, key: Hashable = None) -> None:
        """After a change: a new stamp for every process, and this process's copy (of `key`, or all) dropped now."""
        cache.set(self._key_of(key), uuid.uuid4().hex, timeout=None)
        with self._lock:
            if self._per_key:
                self._items.pop(key, None)
            else:
                self._items.clear()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
