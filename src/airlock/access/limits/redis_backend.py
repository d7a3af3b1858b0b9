"""Rate limits shared by several gateway replicas through Redis.

Both buckets of a principal are read, checked and paid in one Lua script, so
concurrent requests on different replicas cannot both take the last token. Keys:
``{prefix}rl:{<principal id>}:req`` and ``…:tok`` (the braces keep both in one
Redis Cluster slot); each expires once its bucket would be full again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from airlock.access.limits._bucket import Levels, reservation_or_error
from airlock.access.limits._scripts import ACQUIRE, RECONCILE
from airlock.access.limits._types import (
    Reservation,
    request_too_large_error,
    validate_acquire,
)
from airlock.errors import ServiceUnavailableError

__all__ = ["RedisRateLimiter"]

_log = logging.getLogger(__name__)


def _level(raw: Any) -> float | None:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return None if text == "" else float(text)


def _unlimited(principal_id: str, estimated_tokens: int, *, degraded: bool = False) -> Reservation:
    return Reservation(
        principal_id=principal_id,
        rpm=None,
        tpm=None,
        estimated_tokens=estimated_tokens,
        remaining_requests=None,
        remaining_tokens=None,
        reset_requests_seconds=None,
        reset_tokens_seconds=None,
        degraded=degraded,
    )


class RedisRateLimiter:
    """Token buckets in Redis, updated by atomic Lua scripts.

    ``fail_open``: when Redis cannot be reached, let requests through (logged, and the
    reservation is marked ``degraded``) instead of answering 503.
    ``clock_us``: tests only; replaces Redis ``TIME`` with a clock in microseconds.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "airlock:",
        fail_open: bool = False,
        clock_us: Callable[[], int] | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fail_open = fail_open
        self._clock_us = clock_us
        self._acquire = client.register_script(ACQUIRE)
        self._reconcile = client.register_script(RECONCILE)

    def keys_for(self, principal_id: str) -> tuple[str, str]:
        """The request and token bucket keys of a principal."""
        base = f"{self._prefix}rl:{{{principal_id}}}"
        return f"{base}:req", f"{base}:tok"

    def _now_arg(self) -> str:
        return "" if self._clock_us is None else str(self._clock_us())

    async def acquire(
        self, principal_id: str, rpm: int | None, tpm: int | None, estimated_tokens: int
    ) -> Reservation:
        validate_acquire(rpm, tpm, estimated_tokens)
        if tpm is not None and estimated_tokens > tpm:
            raise request_too_large_error(tpm, estimated_tokens)
        if rpm is None and tpm is None:
            return _unlimited(principal_id, estimated_tokens)
        try:
            allowed, raw_r, raw_t = await self._acquire(
                keys=list(self.keys_for(principal_id)),
                args=[rpm or 0, tpm or 0, estimated_tokens, self._now_arg()],
            )
        except (RedisError, OSError) as exc:
            return self._unavailable(principal_id, rpm, tpm, estimated_tokens, exc)
        levels = Levels(requests=_level(raw_r), tokens=_level(raw_t))
        outcome = reservation_or_error(principal_id, rpm, tpm, estimated_tokens, levels)
        if not isinstance(outcome, Reservation):
            raise outcome
        if int(allowed) != 1:
            # The script and Python disagree only if the arithmetic differs; never silently.
            raise RuntimeError("rate limiter script and bucket arithmetic disagree")
        return outcome

    def _unavailable(
        self, principal_id: str, rpm: int | None, tpm: int | None, want: int, exc: Exception
    ) -> Reservation:
        _log.warning(
            "rate_limiter_unavailable",
            extra={"error_type": type(exc).__name__, "fail_open": self._fail_open},
        )
        if not self._fail_open:
            raise ServiceUnavailableError("rate limiter is unavailable; try again later") from None
        return _unlimited(principal_id, want, degraded=True)

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        if reservation.settled:
            raise RuntimeError("reservation was already reconciled")
        if actual_tokens < 0:
            raise ValueError("actual_tokens must not be negative")
        reservation.settled = True
        delta = actual_tokens - reservation.estimated_tokens
        if reservation.tpm is None or reservation.degraded or delta == 0:
            return
        try:
            await self._reconcile(
                keys=[self.keys_for(reservation.principal_id)[1]],
                args=[reservation.tpm, delta, self._now_arg()],
            )
        except (RedisError, OSError) as exc:
            # After the response was served: log and carry on, nothing to refuse any more.
            _log.warning("rate_limiter_reconcile_failed", extra={"error_type": type(exc).__name__})
