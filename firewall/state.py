"""Short-lived shared state of the firewall: conversation turns per session and the per-key rate limit.

With Redis (REDIS_URL) both live in the cache database, so every web process sees the same turns and counts; without
it they live in this process (the embedded default runs one process). Either way keys are namespaced by organization,
so a session id chosen by one tenant can never read another tenant's turns.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

MAX_TURN_CHARS = 4_000  # of each turn kept for context
MAX_LOCAL_KEYS = 20_000  # sessions or rate-limit keys kept in-process (least recently used dropped first)


@lru_cache(maxsize=1)
def _redis():
    import redis

    url = getattr(settings, "REDIS_CACHE_URL", "") or settings.REDIS_URL
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=30)


def _use_redis() -> bool:
    return bool(settings.REDIS_URL)


def _prefix() -> str:
    return f"{getattr(settings, 'CACHE_KEY_PREFIX', '') or 'evalence'}:fw"


class _LocalStore:
    """A bounded, thread-safe LRU of values with expiry, for the process-local fallback."""

    def __init__(self) -> None:
        self._data: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, default: object = None) -> object:
        with self._lock:
            item = self._data.get(key)
            if item is None or item[0] < time.monotonic():
                self._data.pop(key, None)
                return default
            self._data.move_to_end(key)
            return item[1]

    def set(self, key: str, value: object, ttl: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > MAX_LOCAL_KEYS:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_local = _LocalStore()


# --- conversation context ----------------------------------------------------------------------------------------


def _turns_key(organization_id: object, session_id: str) -> str:
    return f"{_prefix()}:ctx:{organization_id}:{session_id}"


def session_turns(organization_id: object, session_id: str, limit: int) -> list[str]:
    """The session's most recent `limit` turns, oldest first."""
    if not session_id or limit <= 0:
        return []
    key = _turns_key(organization_id, session_id)
    if _use_redis():
        raw = _redis().lrange(key, 0, limit - 1)
        return [item.decode("utf-8", "replace") for item in reversed(raw)]
    turns = _local.get(key, ())
    return list(turns)[-limit:]  # type: ignore[call-overload]


def remember_turn(organization_id: object, session_id: str, text: str, *, keep: int, ttl_s: int) -> None:
    """Add a turn to the session (newest kept, at most `keep`), renewing its time to live."""
    if not session_id or keep <= 0:
        return
    text = text[:MAX_TURN_CHARS]
    key = _turns_key(organization_id, session_id)
    if _use_redis():
        pipe = _redis().pipeline(transaction=False)
        pipe.lpush(key, text.encode("utf-8", "surrogatepass"))
        pipe.ltrim(key, 0, keep - 1)
        pipe.expire(key, ttl_s)
        pipe.execute()
        return
    with _local._lock:  # read-modify-write of one session under the store's lock
        item = _local._data.get(key)
        turns: deque[str] = deque(item[1] if item and item[0] >= time.monotonic() else (), maxlen=keep)  # type: ignore[arg-type]
    turns.append(text)
    _local.set(key, tuple(turns), ttl_s)


# --- rate limit ---------------------------------------------------------------------------------------------------

# A sliding-window log in one round trip: drop entries older than the window, count, add this one if under the limit;
# when over, answer with the time until the oldest entry leaves the window.
_SLIDING_WINDOW_LUA = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window))
  return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local wait = window
if oldest[2] then wait = tonumber(oldest[2]) + window - now end
return {0, count, math.ceil(wait)}
"""


@dataclass(frozen=True, slots=True)
class RateResult:
    allowed: bool
    count: int
    limit: int
    retry_after_s: int = 0


@lru_cache(maxsize=1)
def _script():
    return _redis().register_script(_SLIDING_WINDOW_LUA)


_member_counter = iter(range(1 << 62))
_member_lock = threading.Lock()


def _member() -> str:
    with _member_lock:
        return f"{time.time_ns()}-{next(_member_counter)}-{threading.get_ident()}"


def rate_limit_hit(key: str, limit: int, window_s: int = 60) -> RateResult:
    """Count one request for `key` against `limit` per `window_s` (a true sliding window, not fixed buckets)."""
    if limit <= 0:
        return RateResult(True, 0, 0)
    full_key = f"{_prefix()}:rl:{key}"
    if _use_redis():
        now_ms = time.time() * 1000
        allowed, count, wait_ms = _script()(keys=[full_key], args=[now_ms, window_s * 1000, limit, _member()])
        return RateResult(bool(allowed), int(count), limit, 0 if allowed else max(1, math.ceil(int(wait_ms) / 1000)))
    now = time.monotonic()
    with _rate_lock:
        item = _local.get(full_key)
        stamps: deque[float] = item if isinstance(item, deque) else deque()
        while stamps and stamps[0] <= now - window_s:
            stamps.popleft()
        if len(stamps) < limit:
            stamps.append(now)
            _local.set(full_key, stamps, window_s)
            return RateResult(True, len(stamps), limit)
        wait = stamps[0] + window_s - now
        return RateResult(False, len(stamps), limit, max(1, math.ceil(wait)))


_rate_lock = threading.Lock()


def reset_local_state() -> None:
    """Forget process-local turns and counts (tests, and `make run` restarts)."""
    _local.clear()
