"""The circuit breaker's states, driven by a clock the test controls."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airlock.routing.breaker import BreakerSettings, CircuitBreaker


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _breaker(clock: Clock, threshold: int = 3, reset_after: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(threshold, reset_after), clock=clock)


def test_opens_after_consecutive_failures_only(clock: Clock) -> None:
    b = _breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()  # a success in between resets the count
    b.record_failure()
    b.record_failure()
    assert b.state == "closed"
    assert b.consecutive_failures == 2
    assert b.allow()
    b.record_failure()
    assert b.state == "open"
    assert not b.allow()
    assert not b.available()
    assert b.retry_in() == 10.0


def test_half_open_lets_exactly_one_trial_through(clock: Clock) -> None:
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 9.9
    assert b.state == "open"
    assert b.claim() is None
    assert b.retry_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert b.state == "half_open"
    assert b.available()
    assert b.retry_in() == 0
    assert b.claim() == "trial"
    # While the trial is out, everyone else is refused and ranking sees it unavailable.
    assert b.claim() is None
    assert not b.available()
    b.record_success()
    assert b.state == "closed"
    assert b.claim() == "call"
    assert b.consecutive_failures == 0


def test_failed_trial_reopens_for_a_full_period(clock: Clock) -> None:
    b = _breaker(clock, threshold=2)
    b.record_failure()
    b.record_failure()
    clock.now += 10
    assert b.claim() == "trial"
    clock.now += 3
    b.record_failure()
    assert b.state == "open"
    assert b.retry_in() == 10.0
    clock.now += 10
    assert b.claim() == "trial"


def test_released_trial_can_be_claimed_again(clock: Clock) -> None:
    # A trial that ended without a verdict (cancelled, refused before sending) must
    # not leave the circuit stuck with a trial "in flight" forever.
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 10
    claim = b.claim()
    assert claim == "trial"
    assert b.claim() is None
    b.release(claim)
    assert b.state == "half_open"
    assert b.claim() == "trial"


def test_releasing_an_ordinary_call_does_not_free_someone_elses_trial(clock: Clock) -> None:
    b = _breaker(clock, threshold=1)
    ordinary = b.claim()
    assert ordinary == "call"
    b.record_failure()  # another call failed: open
    clock.now += 10
    assert b.claim() == "trial"
    b.release(ordinary)  # the earlier call was cancelled
    assert b.claim() is None


def test_failures_while_open_restart_the_period(clock: Clock) -> None:
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 8
    b.record_failure()  # a late call or a failed health probe: fresh evidence
    clock.now += 8
    assert b.state == "open"
    assert b.retry_in() == pytest.approx(2)


def test_probe_success_moves_open_to_half_open_but_does_not_close(clock: Clock) -> None:
    b = _breaker(clock, threshold=1)
    b.record_failure()
    clock.now += 1
    b.record_probe_success()
    assert b.state == "half_open"
    assert b.retry_in() == 0
    assert b.claim() == "trial"
    b.record_probe_success()  # no effect while a trial is out
    assert b.claim() is None
    b.record_failure()
    assert b.state == "open"


def test_probe_success_leaves_a_closed_breaker_and_its_count_alone(clock: Clock) -> None:
    b = _breaker(clock, threshold=3)
    b.record_failure()
    b.record_failure()
    b.record_probe_success()
    assert b.state == "closed"
    assert b.consecutive_failures == 2
    b.record_failure()
    assert b.state == "open"


def test_late_success_closes_an_open_breaker(clock: Clock) -> None:
    # A call that started before the circuit opened and then succeeded is evidence
    # the upstream works again.
    b = _breaker(clock, threshold=1)
    b.record_failure()
    b.record_success()
    assert b.state == "closed"
    assert b.retry_in() == 0


def test_default_settings() -> None:
    b = CircuitBreaker()
    assert b.settings == BreakerSettings(failure_threshold=5, reset_after_s=15.0)
    for _ in range(4):
        b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open"
