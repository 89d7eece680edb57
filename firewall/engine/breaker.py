"""Circuit breakers for remote model detectors: a judge that keeps failing is left alone for a while instead of
costing every evaluation its timeout.

closed ──(failure_threshold failures in a row)──▶ open ──(recovery_timeout_s passed)──▶ half_open
half_open lets ONE trial call through: success → closed, failure → open again (a new recovery timeout).

Breakers live in the process (each web or worker process has its own): they protect that process's latency, and a
shared breaker would need a network round trip on the hot path. `breaker_for()` keeps one per detector model and
replaces it when the model's breaker settings change. Plain Python, thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# (breaker name, old state or None when the breaker was just created, new state)
ChangeCallback = Callable[[str, "BreakerState | None", BreakerState], None]
FailureCallback = Callable[[str], None]


class CircuitBreaker:
    """Closed / open / half-open breaker around one remote dependency."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        recovery_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if recovery_timeout_s < 0:
            raise ValueError("recovery_timeout_s must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout_s = recovery_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive failures while closed
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._on_change: list[ChangeCallback] = []
        self._on_failure: list[FailureCallback] = []

    @property
    def state(self) -> BreakerState:
        """The current state. An open breaker stays open until `allow()` is asked after its recovery timeout."""
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(name, old, new)` after every state change (metrics, logs)."""
        self._on_change.append(callback)

    def on_failure(self, callback: FailureCallback) -> None:
        """Call `callback(name)` after every recorded failure (metrics)."""
        self._on_failure.append(callback)

    def allow(self) -> bool:
        """May a call go through now? Open: no, until the recovery timeout has passed; then exactly one trial call."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if not self._recovered():
                    return False
                change = self._move(BreakerState.HALF_OPEN)
                self._trial_in_flight = True
            elif self._trial_in_flight:  # half-open and the one trial call is still out
                return False
            else:
                self._trial_in_flight = True
                change = None
        self._notify(change)
        return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            change = self._move(BreakerState.CLOSED)
        self._notify(change)

    def record_failure(self) -> None:
        with self._lock:
            self._trial_in_flight = False
            change = None
            if self._state is BreakerState.HALF_OPEN:
                self._opened_at = self._clock()
                change = self._move(BreakerState.OPEN)
            elif self._state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._opened_at = self._clock()
                    change = self._move(BreakerState.OPEN)
            # A failure reported while already open (a call let through before it opened) changes nothing.
        self._notify(change)
        for callback in list(self._on_failure):
            callback(self.name)

    def _recovered(self) -> bool:
        return self._clock() - self._opened_at >= self.recovery_timeout_s

    def _move(self, new: BreakerState) -> tuple[BreakerState, BreakerState] | None:
        old = self._state
        if old is new:
            return None
        self._state = new
        if new is BreakerState.CLOSED:
            self._failures = 0
        return old, new

    def _notify(self, change: tuple[BreakerState, BreakerState] | None) -> None:
        # Outside the lock: a callback may read the breaker's state.
        if change is None:
            return
        for callback in list(self._on_change):
            callback(self.name, change[0], change[1])

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state})"


# --- the process-wide registry ---------------------------------------------------------------------------------------

_registry_lock = threading.Lock()
_breakers: dict[str, CircuitBreaker] = {}
_listeners: dict[str, tuple[ChangeCallback | None, FailureCallback | None]] = {}


def breaker_for(
    key: str, failure_threshold: int, recovery_timeout_s: float, *, name: str | None = None
) -> CircuitBreaker:
    """This process's breaker for one detector model (key: the model's id; name: the label metrics and logs use).

    A model whose breaker settings (or name) changed gets a fresh, closed breaker; otherwise the same one comes back,
    keeping its state across evaluations.
    """
    name = name or key
    with _registry_lock:
        breaker = _breakers.get(key)
        if (
            breaker is not None
            and breaker.failure_threshold == failure_threshold
            and breaker.recovery_timeout_s == recovery_timeout_s
            and breaker.name == name
        ):
            return breaker
        breaker = CircuitBreaker(name, failure_threshold, recovery_timeout_s)
        for on_change, on_failure in _listeners.values():
            if on_change is not None:
                breaker.on_change(on_change)
            if on_failure is not None:
                breaker.on_failure(on_failure)
        _breakers[key] = breaker
        listeners = list(_listeners.values())
    for on_change, _ in listeners:
        if on_change is not None:
            on_change(name, None, BreakerState.CLOSED)
    return breaker


def subscribe(
    listener_id: str, *, on_change: ChangeCallback | None = None, on_failure: FailureCallback | None = None
) -> None:
    """Attach callbacks to every breaker `breaker_for()` creates from now on (and to the existing ones).

    Subscribing twice under the same id replaces the first subscription for breakers created afterwards, so a module
    that subscribes at import time may be imported twice.
    """
    with _registry_lock:
        replacing = listener_id in _listeners
        _listeners[listener_id] = (on_change, on_failure)
        existing = [] if replacing else list(_breakers.values())
    for breaker in existing:
        if on_change is not None:
            breaker.on_change(on_change)
        if on_failure is not None:
            breaker.on_failure(on_failure)


def forget_breakers() -> None:
    """Drop every breaker of this process (tests; a model deleted for good)."""
    with _registry_lock:
        _breakers.clear()
