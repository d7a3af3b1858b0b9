"""Trying deployments in order: retries with jittered backoff, fallback, circuit breakers.

A call is retried only where that is safe: the error is marked retryable (connect
errors, timeouts before the first byte, 429 and 5xx) and nothing has been sent to the
client yet — callers pass an ``attempt`` that finishes before the first byte goes out
(for streams: until the first chunk is in hand).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from airlock.errors import AirlockError, ServiceUnavailableError, UpstreamError
from airlock.routing.table import Deployment

__all__ = ["FailoverResult", "RetrySettings", "run_with_failover"]

T = TypeVar("T")
_log = logging.getLogger("airlock.failover")


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int = 3
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    # An upstream's Retry-After longer than this is not waited for: the next deployment
    # is tried instead, or the error goes back to the client.
    retry_after_cap_s: float = 5.0


@dataclass(frozen=True, slots=True)
class FailoverResult(Generic[T]):
    value: T
    deployment: Deployment
    attempts: int


def _backoff(settings: RetrySettings, attempt: int, retry_after: float | None) -> float | None:
    if retry_after is not None:
        return retry_after if retry_after <= settings.retry_after_cap_s else None
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * (2**attempt))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


async def run_with_failover(
    candidates: Sequence[Deployment],
    attempt: Callable[[Deployment], Awaitable[T]],
    settings: RetrySettings,
    request_id: str,
) -> FailoverResult[T]:
    """Run ``attempt`` on the candidates in order until one succeeds.

    The router builds ``candidates``: the model's replicas (repeated up to
    ``max_attempts``), then its fallback models' replicas, all already filtered by
    policy — so no retry or fallback can leave the allowed tier or regions.
    """
    last: AirlockError | None = None
    tried = 0
    for dep in candidates:
        if not dep.breaker.allow():
            continue
        tried += 1
        try:
            value = await attempt(dep)
        except UpstreamError as exc:
            dep.breaker.record_failure()
            last = exc
            _log.warning(
                "upstream_failed",
                extra={
                    "request_id": request_id,
                    "deployment": dep.id,
                    "upstream_status": exc.upstream_status,
                    "error_code": exc.code,
                    "retryable": exc.retryable,
                },
            )
            if not exc.retryable:
                raise
            delay = _backoff(settings, tried - 1, exc.retry_after)
            if delay:
                await anyio.sleep(delay)
            continue
        dep.breaker.record_success()
        return FailoverResult(value, dep, tried)
    if last is not None:
        raise last
    raise ServiceUnavailableError(
        "No deployment of the requested model is available right now (all are failing "
        "their health checks or circuit breakers are open). Try again shortly.",
        headers={"retry-after": "5"},
    )
