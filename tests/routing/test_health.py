"""Active health checks against real upstreams on loopback, feeding the breakers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from airlock.config import AppConfig
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.routing.breaker import BreakerSettings, CircuitBreaker
from airlock.routing.health import DeploymentHealth, HealthChecker
from airlock.routing.table import Deployment, ModelTable
from tests.support.faulty_upstream import FaultyUpstream


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, FaultyUpstream]]:
    servers = {n: FaultyUpstream(n).start() for n in ("a", "b")}
    yield servers
    for s in servers.values():
        s.stop()


@pytest.fixture(autouse=True)
def _fresh(ups: dict[str, FaultyUpstream]) -> None:
    for s in ups.values():
        s.reset()


def _dep(url: str, name: str) -> dict[str, Any]:
    return {
        "provider": "openai-compatible",
        "name": name,
        "base_url": url,
        "timeouts": {"connect": 0.3, "first_token": 1, "total": 2},
    }


@pytest.fixture
async def table(ups: dict[str, FaultyUpstream], tmp_path: Path) -> AsyncIterator[ModelTable]:
    app = AppConfig.model_validate(
        {
            "models": [
                {
                    "name": "m1",
                    "tier": "self-hosted",
                    "deployments": [_dep(ups["a"].base_url, "a"), _dep(ups["b"].base_url, "b")],
                },
                {
                    "name": "m2",
                    "tier": "frontier",
                    # Nothing listens on the discard port.
                    "deployments": [_dep("http://127.0.0.1:9/v1", "gone")],
                },
            ]
        }
    )
    t = ModelTable.build(app, builtin_registry(), Resources(tmp_path))
    await t.start()
    for dep in t.deployments():
        dep.breaker = CircuitBreaker(BreakerSettings(failure_threshold=2, reset_after_s=30))
    yield t
    await t.aclose()


def _by_id(snapshot: list[DeploymentHealth]) -> dict[str, DeploymentHealth]:
    return {h.deployment: h for h in snapshot}


def _dep_of(table: ModelTable, dep_id: str) -> Deployment:
    return next(d for d in table.deployments() if d.id == dep_id)


@pytest.mark.anyio
async def test_snapshot_before_and_after_a_round(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    checker = HealthChecker(table, interval_s=10, wall_clock=lambda: 1234.5)
    before = _by_id(checker.snapshot())
    assert list(before) == ["a", "b", "gone"]
    assert before["a"] == DeploymentHealth("a", "m1", True, "closed", None, 0, None)
    after = _by_id(await checker.check_once())
    assert after["a"].healthy
    assert after["b"].healthy
    assert after["a"].last_check_at == 1234.5
    assert after["a"].last_latency_s is not None
    assert after["gone"] == DeploymentHealth(
        "gone", "m2", False, "closed", 1234.5, 1, after["gone"].last_latency_s
    )
    assert ups["a"].health_checks == 1
    assert ups["b"].health_checks == 1


@pytest.mark.anyio
async def test_failed_probes_open_the_breaker_passing_probe_half_opens_it(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    checker = HealthChecker(table, interval_s=10)
    a = _dep_of(table, "a")
    ups["a"].set_health(ok=False)
    await checker.check_once()
    assert a.breaker.state == "closed"
    snap = _by_id(await checker.check_once())
    assert a.breaker.state == "open"
    assert not a.breaker.available()
    assert snap["a"] == DeploymentHealth(
        "a", "m1", False, "open", snap["a"].last_check_at, 2, snap["a"].last_latency_s
    )
    assert snap["b"].healthy
    assert snap["b"].breaker == "closed"
    # Recovery: one passing probe makes the next request the trial (no 30 s wait) ...
    ups["a"].set_health(ok=True)
    snap = _by_id(await checker.check_once())
    assert snap["a"].healthy
    assert snap["a"].consecutive_failures == 0
    assert snap["a"].breaker == "half_open"
    # ... and the trial request decides.
    assert a.breaker.claim() == "trial"
    a.breaker.record_success()
    assert _by_id(checker.snapshot())["a"].breaker == "closed"


@pytest.mark.anyio
async def test_failed_probes_never_keep_an_open_breaker_from_its_trial(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    # An upstream with a broken health endpoint that serves completions fine must come
    # back after an outage: the time-based trial request decides, not the probes.
    checker = HealthChecker(table, interval_s=10)
    a = _dep_of(table, "a")
    a.breaker = CircuitBreaker(BreakerSettings(1, reset_after_s=0.2))
    a.breaker.record_failure()
    ups["a"].set_health(ok=False)
    await anyio.sleep(0.15)
    await checker.check_once()
    await anyio.sleep(0.1)
    assert a.breaker.state == "half_open"
    await checker.check_once()
    assert a.breaker.claim() == "trial"
    a.breaker.record_success()
    assert a.breaker.state == "closed"
    assert not _by_id(checker.snapshot())["a"].healthy


@pytest.mark.anyio
async def test_real_successes_outweigh_a_broken_health_endpoint(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    # An upstream whose /models fails but which serves requests stays in rotation.
    checker = HealthChecker(table, interval_s=10)
    a = _dep_of(table, "a")
    ups["a"].set_health(ok=False)
    for _ in range(4):
        await checker.check_once()
        a.breaker.record_success()  # a request it served
    assert a.breaker.state == "closed"


@pytest.mark.anyio
async def test_a_hung_probe_times_out_without_delaying_the_others(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    checker = HealthChecker(table, interval_s=10, timeout_s=0.2)
    ups["a"].set_health(ok=True, delay_s=5)
    began = time.monotonic()
    snap = _by_id(await checker.check_once())
    elapsed = time.monotonic() - began
    assert elapsed < 0.6
    assert not snap["a"].healthy
    assert snap["b"].healthy
    assert snap["a"].last_latency_s is not None
    assert snap["a"].last_latency_s < 0.5
    # The abandoned probe's connection was closed, not left hanging on the upstream.
    assert ups["a"].wait_until(lambda u: u.open_connections == 0, 2)


class _Exploding:
    capabilities: Any = None

    async def check_health(self) -> bool:
        raise RuntimeError("secret detail that must not be logged")


@pytest.mark.anyio
async def test_a_probe_that_raises_is_a_failed_probe_and_logs_only_the_type(
    table: ModelTable, caplog: pytest.LogCaptureFixture
) -> None:
    checker = HealthChecker(table, interval_s=10)
    b = _dep_of(table, "b")
    real = b.provider
    b.provider = _Exploding()  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.INFO, logger="airlock.health"):
            snap = _by_id(await checker.check_once())
    finally:
        b.provider = real
    assert not snap["b"].healthy
    assert snap["a"].healthy
    errors = [r for r in caplog.records if r.getMessage() == "health_check_error"]
    assert [getattr(r, "exc_type", None) for r in errors] == ["RuntimeError"]
    assert "secret detail" not in caplog.text
    assert {r.getMessage() for r in caplog.records} >= {"deployment_unhealthy"}


@pytest.mark.anyio
async def test_background_loop_runs_every_interval_until_closed(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    checker = HealthChecker(table, interval_s=0.1)
    await checker.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await checker.start()
        await anyio.sleep(0.45)
    finally:
        await checker.aclose()
    probes = ups["a"].health_checks
    assert 3 <= probes <= 6
    await anyio.sleep(0.25)
    assert ups["a"].health_checks == probes  # stopped
    await checker.aclose()  # closing twice is harmless


@pytest.mark.anyio
async def test_background_loop_marks_a_dying_upstream(
    table: ModelTable, ups: dict[str, FaultyUpstream]
) -> None:
    checker = HealthChecker(table, interval_s=0.05)
    await checker.start()
    try:
        await anyio.sleep(0.1)
        assert _dep_of(table, "b").breaker.state == "closed"
        ups["b"].set_health(ok=False)
        with anyio.fail_after(2):
            while _dep_of(table, "b").breaker.state != "open":
                await anyio.sleep(0.02)
    finally:
        await checker.aclose()
    snap = _by_id(checker.snapshot())
    assert not snap["b"].healthy
    assert snap["b"].consecutive_failures >= 2
    assert snap["a"].healthy


@pytest.mark.anyio
async def test_interval_must_be_positive(table: ModelTable) -> None:
    with pytest.raises(ValueError, match="interval"):
        HealthChecker(table, interval_s=0)
