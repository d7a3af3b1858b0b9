"""Trying deployments in order: retries with jittered backoff, fallback, circuit breakers.

A call is retried only where that is safe: the error is marked retryable (connect
errors, timeouts before the first byte, 429 and 5xx) and nothing has been sent to the
client yet — callers pass an ``attempt`` that finishes before the first byte goes out
(for streams: until the first chunk is in hand).

Waiting is per deployment, not per attempt: after a failure the same deployment is
not called again before its backoff (or its ``Retry-After``) has passed, while another
replica or a fallback model is tried at once. A deployment whose ``Retry-After`` is
longer than ``retry_after_cap_s``, or that refused the call for a reason a retry cannot
fix (401/403/404), is not called again for this request.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from airlock.errors import AirlockError, ServiceUnavailableError, UpstreamError
from airlock.providers.upstream_errors import DeploymentBusyError
from airlock.routing.table import Deployment

__all__ = ["FailoverResult", "RetrySettings", "run_with_failover"]

T = TypeVar("T")
_log = logging.getLogger("airlock.failover")

# The upstream answered but will refuse this deployment's calls whatever we do.
_PERMANENT = frozenset({401, 403, 404})


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


def _backoff(settings: RetrySettings, failures: int, retry_after: float | None) -> float | None:
    """Seconds before the same deployment may be called again; None: not in this request.

    ``failures`` counts this deployment's failures in this request (1 after the first).
    """
    if retry_after is not None:
        return retry_after if retry_after <= settings.retry_after_cap_s else None
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * (2 ** (failures - 1)))
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
    failures: dict[str, int] = {}
    not_before: dict[str, float] = {}
    given_up: set[str] = set()
    for dep in candidates:
        if dep.id in given_up:
            continue
        wait = not_before.get(dep.id, 0.0) - anyio.current_time()
        if wait > 0:
            await anyio.sleep(wait)
        claim = dep.breaker.claim()
        if claim is None:
            continue
        tried += 1
        try:
            value = await attempt(dep)
        except UpstreamError as exc:
            if isinstance(exc, DeploymentBusyError):
                # Our own connection limit, not the upstream's health.
                dep.breaker.release(claim)
            else:
                dep.breaker.record_failure()
            last = exc
            failures[dep.id] = failures.get(dep.id, 0) + 1
            delay = (
                None
                if exc.upstream_status in _PERMANENT
                else _backoff(settings, failures[dep.id], exc.retry_after)
            )
            _log.warning(
                "upstream_failed",
                extra={
                    "request_id": request_id,
                    "deployment": dep.id,
                    "upstream_status": exc.upstream_status,
                    "error_code": exc.code,
                    "retryable": exc.retryable,
                    "attempt": tried,
                    "retry_in_s": None if delay is None else round(delay, 3),
                },
            )
            if not exc.retryable:
                raise
            if delay is None:
                given_up.add(dep.id)
            else:
                not_before[dep.id] = anyio.current_time() + delay
            continue
        except BaseException:
            # Refused before it was sent (a 400, an unsupported parameter) or cancelled
            # (the client went away): nothing learnt about the upstream's health.
            dep.breaker.release(claim)
            raise
        dep.breaker.record_success()
        return FailoverResult(value, dep, tried)
    if last is not None:
        raise last
    wait_s = min((d.breaker.retry_in() for d in candidates), default=5.0)
    raise ServiceUnavailableError(
        "No deployment of the requested model is available right now (all are failing "
        "their health checks or circuit breakers are open). Try again shortly.",
        headers={"retry-after": str(max(1, math.ceil(wait_s)))},
    )
