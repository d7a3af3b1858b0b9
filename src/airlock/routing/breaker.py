"""A circuit breaker per deployment: closed, open, half-open."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BreakerSettings", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


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

    def allow(self) -> bool:
        """May a call go out now? In half-open state exactly one trial call may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

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
