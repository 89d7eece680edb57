"""Circuit breakers: every transition, driven by an injected clock (no sleeping, no timing)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from firewall.engine import breaker as breakers
from firewall.engine.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("model:judge", failure_threshold=3, recovery_timeout_s=30.0, clock=clock)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Any:
    breakers.forget_breakers()
    yield
    breakers.forget_breakers()


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_a_new_breaker_is_closed_and_lets_calls_through(breaker: CircuitBreaker) -> None:
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))


def test_it_stays_closed_below_the_failure_threshold(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2
    assert breaker.allow()


def test_a_success_resets_the_count_of_failures_in_a_row(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_it_opens_at_the_threshold_and_refuses_calls(breaker: CircuitBreaker) -> None:
    open_it(breaker)
    assert not breaker.allow()
    assert not breaker.allow()


def test_it_stays_open_until_the_recovery_timeout_passes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(29.9)
    assert not breaker.allow()
    assert breaker.state is BreakerState.OPEN


def test_after_the_recovery_timeout_exactly_one_trial_call_goes_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_it(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # the trial call is still out
    clock.advance(100)
    assert not breaker.allow()


def test_a_successful_trial_closes_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow() and breaker.allow()


def test_a_failed_trial_opens_it_again_for_a_whole_new_recovery_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_it(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_late_failure_while_open_does_not_extend_the_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(20)
    breaker.record_failure()  # a call let through before it opened, reporting late
    clock.advance(10)
    assert breaker.allow()


def test_on_change_reports_every_transition_in_order(breaker: CircuitBreaker, clock: FakeClock) -> None:
    seen: list[tuple[str, Any, Any]] = []
    breaker.on_change(lambda name, old, new: seen.append((name, old, new)))
    open_it(breaker)
    clock.advance(30)
    breaker.allow()
    breaker.record_failure()
    clock.advance(30)
    breaker.allow()
    breaker.record_success()
    breaker.record_success()  # no change, no report
    assert seen == [
        ("model:judge", BreakerState.CLOSED, BreakerState.OPEN),
        ("model:judge", BreakerState.OPEN, BreakerState.HALF_OPEN),
        ("model:judge", BreakerState.HALF_OPEN, BreakerState.OPEN),
        ("model:judge", BreakerState.OPEN, BreakerState.HALF_OPEN),
        ("model:judge", BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_on_failure_reports_each_failure(breaker: CircuitBreaker) -> None:
    failures: list[str] = []
    breaker.on_failure(failures.append)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert failures == ["model:judge", "model:judge"]


def test_a_callback_may_read_the_breaker_without_deadlocking(breaker: CircuitBreaker) -> None:
    states: list[BreakerState] = []
    breaker.on_change(lambda *_: states.append(breaker.state))
    open_it(breaker)
    assert states == [BreakerState.OPEN]


def test_concurrent_callers_get_one_trial_call_between_them(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_it(breaker)
    clock.advance(30)
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def call() -> None:
        start.wait()
        result = breaker.allow()
        with lock:
            allowed.append(result)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="recovery_timeout_s"):
        CircuitBreaker("x", recovery_timeout_s=-1)


def test_the_registry_returns_the_same_breaker_while_the_settings_stay_the_same() -> None:
    first = breakers.breaker_for("model-1", 3, 30.0, name="model:a")
    first.record_failure()
    again = breakers.breaker_for("model-1", 3, 30.0, name="model:a")
    assert again is first
    assert again.consecutive_failures == 1
    assert breakers.breaker_for("model-2", 3, 30.0) is not first


def test_the_registry_replaces_a_breaker_whose_settings_changed() -> None:
    first = breakers.breaker_for("model-1", 1, 30.0, name="model:a")
    first.record_failure()
    assert first.state is BreakerState.OPEN
    replaced = breakers.breaker_for("model-1", 5, 30.0, name="model:a")
    assert replaced is not first
    assert replaced.state is BreakerState.CLOSED
    assert replaced.failure_threshold == 5
    assert breakers.breaker_for("model-1", 5, 60.0, name="model:a") is not replaced
    assert breakers.breaker_for("model-1", 5, 60.0, name="model:renamed").name == "model:renamed"


def test_subscribers_hear_from_breakers_the_registry_creates() -> None:
    seen: list[tuple[str, Any, Any]] = []
    failures: list[str] = []
    breakers.subscribe(
        "test-listener", on_change=lambda *change: seen.append(change), on_failure=lambda name: failures.append(name)
    )
    try:
        breaker = breakers.breaker_for("model-9", 1, 30.0, name="model:nine")
        breaker.record_failure()
    finally:
        breakers._listeners.pop("test-listener", None)
    assert seen == [("model:nine", None, BreakerState.CLOSED), ("model:nine", BreakerState.CLOSED, BreakerState.OPEN)]
    assert failures == ["model:nine"]
