"""A circuit breaker per deployment: closed, open, half-open.

- closed: calls go out; ``failure_threshold`` consecutive failures open the circuit.
- open: calls are refused for ``reset_after_s``; any failure seen meanwhile (a late
  call, a failed health probe) is fresh evidence and restarts that period.
- half-open: exactly one trial call goes out; its success closes the circuit, its
  failure opens it again for a full period.

A caller that got a ``claim`` must end it with ``record_success``, ``record_failure``
or ``release`` (the call ended without saying anything about the upstream: it was
cancelled, or refused before it was sent); otherwise a half-open trial would stay
claimed forever and the deployment would never be tried again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BreakerSettings", "BreakerState", "CircuitBreaker", "Claim"]

BreakerState = Literal["closed", "open", "half_open"]
Claim = Literal["call", "trial"]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    # Consecutive failures that open the circuit.
    failure_threshold: int = 5
    # How long an open circuit refuses calls before one trial call is let through.
    reset_after_s: float = 15.0


@dataclass(slots=True)
class CircuitBreaker:
    settings: BreakerSettings = field(default_factory=BreakerSettings)
    clock: Callable[[], float] = time.monotonic
    _failures: int = 0
    _opened_at: float | None = None
    _trial_in_flight: bool = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.settings.reset_after_s:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.settings.reset_after_s - self.clock())

    def claim(self) -> Claim | None:
        """May a call go out now? In half-open state exactly one trial call may."""
        state = self.state
        if state == "closed":
            return "call"
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return "trial"
        return None

    def allow(self) -> bool:
        """``claim`` as a yes/no (the claim must still be ended, see the module doc)."""
        return self.claim() is not None

    def available(self) -> bool:
        """Like ``allow`` but without claiming the half-open trial (for ranking)."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._trial_in_flight)

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.settings.failure_threshold:
            # A failed trial re-opens the circuit for another full period.
            self._opened_at = self.clock()

    def release(self, claim: Claim) -> None:
        """End a claimed call that says nothing about the upstream's health."""
        if claim == "trial":
            self._trial_in_flight = False

    def record_probe_success(self) -> None:
        """A health probe passed: an open circuit may try a call now (half-open).

        The probe does not close the circuit: an upstream can answer its health
        endpoint and still fail every completion; the trial call decides.
        """
        if self.state == "open":
            self._opened_at = self.clock() - self.settings.reset_after_s
