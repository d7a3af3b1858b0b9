"""Retries, fallback and breakers in ``run_with_failover``.

The attempts here fail on cue (they are the faults); the breakers, deployments and
timing are real. End-to-end failover over real upstreams is in test_router.py and
tests/api/test_resilience.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import pytest

from airlock.config import DeploymentConfig, ModelConfig
from airlock.errors import (
    AirlockError,
    BadRequestError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from airlock.providers.openai_compatible import OpenAICompatibleProvider
from airlock.providers.upstream_errors import DeploymentBusyError, UpstreamRateLimitedError
from airlock.routing.breaker import BreakerSettings, CircuitBreaker
from airlock.routing.failover import RetrySettings, run_with_failover
from airlock.routing.table import Deployment

FAST = RetrySettings(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02, retry_after_cap_s=1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _deps(*names: str, threshold: int = 5, reset_after: float = 30) -> list[Deployment]:
    out = []
    for name in names:
        dep = DeploymentConfig(provider="openai-compatible", name=name, base_url="http://x/v1")
        model = ModelConfig(name=f"model-{name}", tier="self-hosted", deployments=[dep])
        out.append(
            Deployment(
                id=name,
                model=model,
                config=dep,
                provider=OpenAICompatibleProvider(dep, model, name),
                local=False,
                breaker=CircuitBreaker(BreakerSettings(threshold, reset_after)),
            )
        )
    return out


def _server_error(status: int = 500, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(
        "upstream failed", retryable=True, upstream_status=status, retry_after=retry_after
    )


class Script:
    """Each call takes the next outcome: an exception to raise or a value to return."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, float]] = []

    async def __call__(self, dep: Deployment) -> str:
        self.calls.append((dep.id, time.monotonic()))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return str(await outcome())
        return f"{outcome}@{dep.id}"

    @property
    def order(self) -> list[str]:
        return [d for d, _ in self.calls]


@pytest.mark.anyio
async def test_first_success_wins() -> None:
    a, b = _deps("a", "b")
    script = Script("ok")
    res = await run_with_failover([a, b, a], script, FAST, "req")
    assert (res.value, res.deployment, res.attempts) == ("ok@a", a, 1)


@pytest.mark.anyio
async def test_next_replica_is_tried_at_once_same_replica_after_backoff() -> None:
    a, b = _deps("a", "b")
    slow_backoff = RetrySettings(3, backoff_base_s=0.3, backoff_max_s=0.3, retry_after_cap_s=1)
    script = Script(_server_error(), _server_error(retry_after=0.4), "ok")
    began = time.monotonic()
    res = await run_with_failover([a, b, a], script, slow_backoff, "req")
    assert res.value == "ok@a"
    assert res.attempts == 3
    assert script.order == ["a", "b", "a"]
    (_, t_a), (_, t_b), (_, t_a2) = script.calls
    # b right after a failed (no backoff when switching replicas); a again once its
    # own backoff (at most 0.3 s) is over. b's Retry-After delays only b.
    assert t_b - began < 0.1
    assert t_a2 - t_a <= 0.45


@pytest.mark.anyio
async def test_retry_after_is_honoured_for_the_same_deployment() -> None:
    (a,) = _deps("a")
    script = Script(_server_error(429, retry_after=0.4), "ok")
    res = await run_with_failover([a, a, a], script, FAST, "req")
    assert res.value == "ok@a"
    (_, t1), (_, t2) = script.calls
    assert 0.38 <= t2 - t1 < 0.8


@pytest.mark.anyio
async def test_retry_after_beyond_the_cap_gives_the_deployment_up() -> None:
    a, b = _deps("a", "b")
    limited = UpstreamRateLimitedError(
        "limited", retryable=True, upstream_status=429, retry_after=60
    )
    limited.headers["retry-after"] = "60"
    # With another replica: it takes over at once; a is not called again.
    script = Script(limited, _server_error(), "ok")
    res = await run_with_failover([a, b, a, b], script, FAST, "req")
    assert script.order == ["a", "b", "b"]
    assert res.value == "ok@b"
    # Alone: no hammering; the client gets the 429 and its Retry-After.
    (c,) = _deps("c")
    script = Script(limited)
    began = time.monotonic()
    with pytest.raises(UpstreamRateLimitedError) as info:
        await run_with_failover([c, c, c], script, FAST, "req")
    assert time.monotonic() - began < 0.1
    assert len(script.calls) == 1
    assert info.value.status_code == 429
    assert info.value.headers["retry-after"] == "60"


@pytest.mark.anyio
async def test_not_retryable_goes_straight_back() -> None:
    a, b = _deps("a", "b")
    total = UpstreamTimeoutError("did not finish in time", retryable=False)
    script = Script(total, "never")
    with pytest.raises(UpstreamTimeoutError):
        await run_with_failover([a, b], script, FAST, "req")
    assert script.order == ["a"]
    assert a.breaker.consecutive_failures == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [401, 403, 404])
async def test_permanent_refusals_move_on_without_retrying_the_same(status: int) -> None:
    a, b = _deps("a", "b")
    script = Script(_server_error(status), _server_error(503), "ok")
    res = await run_with_failover([a, b, a, b], script, FAST, "req")
    assert script.order == ["a", "b", "b"]
    assert res.value == "ok@b"


@pytest.mark.anyio
async def test_fallback_model_after_the_primary_is_exhausted() -> None:
    a1, a2, fb = _deps("a1", "a2", "fb")
    script = Script(_server_error(), _server_error(), _server_error(), "ok")
    res = await run_with_failover([a1, a2, a1, fb], script, FAST, "req")
    assert script.order == ["a1", "a2", "a1", "fb"]
    assert res.deployment is fb
    assert res.attempts == 4


@pytest.mark.anyio
async def test_all_fail_raises_the_last_error() -> None:
    a, b = _deps("a", "b")
    last = UpstreamTimeoutError("timed out", retryable=True)
    script = Script(_server_error(), last)
    with pytest.raises(UpstreamTimeoutError) as info:
        await run_with_failover([a, b], script, FAST, "req")
    assert info.value is last


@pytest.mark.anyio
async def test_failures_feed_the_breaker_and_open_ones_are_skipped() -> None:
    a, b = _deps("a", "b", threshold=2)
    script = Script(_server_error(), _server_error(), "ok")
    res = await run_with_failover([a, a, a, b], script, FAST, "req")
    # a opened after two failures, so its third turn was skipped without a call.
    assert script.order == ["a", "a", "b"]
    assert res.value == "ok@b"
    assert a.breaker.state == "open"
    assert b.breaker.state == "closed"


@pytest.mark.anyio
async def test_every_breaker_open_is_a_503_with_a_useful_retry_after() -> None:
    a, b = _deps("a", "b", threshold=1, reset_after=30)
    a.breaker.record_failure()
    b.breaker.record_failure()
    script = Script()
    with pytest.raises(ServiceUnavailableError) as info:
        await run_with_failover([a, b], script, FAST, "req")
    assert script.calls == []
    assert info.value.status_code == 503
    assert info.value.headers == {"retry-after": "30"}


@pytest.mark.anyio
async def test_half_open_trial_success_closes() -> None:
    a, b = _deps("a", "b", threshold=1, reset_after=0.05)
    a.breaker.record_failure()
    await anyio.sleep(0.06)
    script = Script("ok")
    res = await run_with_failover([a, b], script, FAST, "req")
    assert res.deployment is a
    assert a.breaker.state == "closed"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "raised",
    [
        BadRequestError("the upstream said the request is invalid"),
        ValueError("a bug in an adapter"),
    ],
)
async def test_errors_that_say_nothing_about_health_release_the_trial(
    raised: Exception,
) -> None:
    (a,) = _deps("a", threshold=1, reset_after=0.05)
    a.breaker.record_failure()
    await anyio.sleep(0.06)
    with pytest.raises(type(raised)):
        await run_with_failover([a], Script(raised), FAST, "req")
    # Not stuck with a trial "in flight": the next request is the trial.
    assert a.breaker.state == "half_open"
    assert a.breaker.available()
    res = await run_with_failover([a], Script("ok"), FAST, "req")
    assert res.deployment is a
    assert a.breaker.state == "closed"


@pytest.mark.anyio
async def test_cancellation_releases_the_trial() -> None:
    (a,) = _deps("a", threshold=1, reset_after=0.05)
    a.breaker.record_failure()
    await anyio.sleep(0.06)

    async def forever() -> str:
        await anyio.sleep(60)
        return "never"

    with anyio.move_on_after(0.1):
        await run_with_failover([a], Script(forever), FAST, "req")
    assert a.breaker.available()


@pytest.mark.anyio
async def test_busy_deployment_is_retried_elsewhere_but_not_held_against_it() -> None:
    a, b = _deps("a", "b", threshold=1)
    busy = DeploymentBusyError("all connections busy", retryable=True)
    script = Script(busy, "ok")
    res = await run_with_failover([a, b], script, FAST, "req")
    assert res.deployment is b
    assert a.breaker.state == "closed"
    assert a.breaker.consecutive_failures == 0


@pytest.mark.anyio
async def test_backoff_grows_per_deployment() -> None:
    (a,) = _deps("a")
    settings = RetrySettings(4, backoff_base_s=0.05, backoff_max_s=0.08, retry_after_cap_s=1)
    script = Script(_server_error(), _server_error(), _server_error(), "ok")
    began = time.monotonic()
    await run_with_failover([a, a, a, a], script, settings, "req")
    # Ceilings 0.05, 0.08 (capped), 0.08: never more than their sum.
    assert time.monotonic() - began < 0.21 + 0.1


@pytest.mark.anyio
async def test_log_lines_carry_metadata_only(caplog: pytest.LogCaptureFixture) -> None:
    a, b = _deps("a", "b")
    script = Script(_server_error(502), "ok")
    with caplog.at_level(logging.WARNING, logger="airlock.failover"):
        await run_with_failover([a, b], script, FAST, "req_abc")
    (rec,) = caplog.records
    assert rec.getMessage() == "upstream_failed"
    fields: Callable[[str], object] = lambda k: getattr(rec, k)  # noqa: E731
    assert fields("request_id") == "req_abc"
    assert fields("deployment") == "a"
    assert fields("upstream_status") == 502
    assert fields("attempt") == 1
    assert isinstance(fields("retry_in_s"), float)


def test_errors_are_airlock_errors() -> None:
    # The client always gets an OpenAI-shaped body from whatever failover raises.
    for exc in (
        _server_error(),
        DeploymentBusyError("busy"),
        UpstreamRateLimitedError("limited"),
    ):
        assert isinstance(exc, AirlockError)
        assert set(exc.to_body()["error"]) == {"message", "type", "param", "code"}
