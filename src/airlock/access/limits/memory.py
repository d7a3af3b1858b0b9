"""Rate limits for a single gateway process, kept in memory.

asyncio-safe without a lock: each operation reads and writes its buckets with no
``await`` in between, so no other task can interleave.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from airlock.access.limits._bucket import Levels, full_in, refilled, reservation_or_error
from airlock.access.limits._types import (
    Reservation,
    request_too_large_error,
    validate_acquire,
)

__all__ = ["MemoryRateLimiter"]

_PRUNE_EVERY = 4096


@dataclass(slots=True)
class _Bucket:
    level: float
    updated: float
    capacity: int


class MemoryRateLimiter:
    """Token buckets per principal in a dict; idle (full) buckets are pruned."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._ops = 0

    def __len__(self) -> int:
        """Number of buckets held (for tests and metrics)."""
        return len(self._buckets)

    def _level(self, key: tuple[str, str], capacity: int, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(capacity)
        return refilled(bucket.level, bucket.updated, capacity, now)

    def _store(self, key: tuple[str, str], capacity: int, level: float, now: float) -> None:
        self._buckets[key] = _Bucket(level=level, updated=now, capacity=capacity)

    def _prune(self, now: float) -> None:
        self._ops += 1
        if self._ops % _PRUNE_EVERY:
            return
        idle = [
            key
            for key, b in self._buckets.items()
            if now - b.updated >= full_in(b.level, b.capacity)
        ]
        for key in idle:
            del self._buckets[key]

    async def acquire(
        self, principal_id: str, rpm: int | None, tpm: int | None, estimated_tokens: int
    ) -> Reservation:
        validate_acquire(rpm, tpm, estimated_tokens)
        if tpm is not None and estimated_tokens > tpm:
            raise request_too_large_error(tpm, estimated_tokens)
        now = self._clock()
        self._prune(now)
        req_key, tok_key = (principal_id, "req"), (principal_id, "tok")
        levels = Levels(
            requests=None if rpm is None else self._level(req_key, rpm, now),
            tokens=None if tpm is None else self._level(tok_key, tpm, now),
        )
        outcome = reservation_or_error(principal_id, rpm, tpm, estimated_tokens, levels)
        if not isinstance(outcome, Reservation):
            raise outcome
        if rpm is not None and levels.requests is not None:
            self._store(req_key, rpm, levels.requests - 1, now)
        if tpm is not None and levels.tokens is not None:
            self._store(tok_key, tpm, levels.tokens - estimated_tokens, now)
        return outcome

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        if reservation.settled:
            raise RuntimeError("reservation was already reconciled")
        if actual_tokens < 0:
            raise ValueError("actual_tokens must not be negative")
        reservation.settled = True
        tpm = reservation.tpm
        if tpm is None or reservation.degraded:
            return
        now = self._clock()
        key = (reservation.principal_id, "tok")
        level = self._level(key, tpm, now) - (actual_tokens - reservation.estimated_tokens)
        # A refund never lifts the bucket above capacity; extra usage may leave it in debt.
        self._store(key, tpm, min(float(tpm), level), now)
