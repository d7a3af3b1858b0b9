"""The router's candidate lists, driven end to end: router → failover → real adapters
→ real scripted upstreams on loopback. (Privacy/region policy: test_router_policy.py.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.access.principal import Principal
from airlock.config import AppConfig
from airlock.errors import ServiceUnavailableError, UpstreamError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.responses import ChatCompletion
from airlock.providers.base import CallContext
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.routing.breaker import BreakerSettings, CircuitBreaker
from airlock.routing.failover import FailoverResult, RetrySettings, run_with_failover
from airlock.routing.router import Router, RouteRequest
from airlock.routing.table import Deployment, ModelTable
from tests.support.faulty_upstream import FaultyUpstream, error, reset

RETRY = RetrySettings(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02, retry_after_cap_s=1)
ANYONE = Principal(id="key_t", kind="api_key", tenant="t", name="t")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, FaultyUpstream]]:
    servers = {n: FaultyUpstream(n).start() for n in ("p1", "p2", "fb", "ext")}
    yield servers
    for s in servers.values():
        s.stop()


@pytest.fixture(autouse=True)
def _fresh(ups: dict[str, FaultyUpstream]) -> None:
    for s in ups.values():
        s.reset()


def _dep(up: FaultyUpstream, name: str, **kw: Any) -> dict[str, Any]:
    timeouts = {"connect": 0.5, "first_token": 0.5, "total": 1.0}
    return {
        "provider": "openai-compatible",
        "name": name,
        "base_url": up.base_url,
        "upstream_model": f"{name}-upstream",
        "timeouts": timeouts,
        **kw,
    }


def _config(ups: dict[str, FaultyUpstream], **routing: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "models": [
                {
                    "name": "primary",
                    "tier": "self-hosted",
                    "deployments": [_dep(ups["p1"], "p1"), _dep(ups["p2"], "p2")],
                },
                {"name": "backup", "tier": "self-hosted", "deployments": [_dep(ups["fb"], "fb")]},
                {"name": "external", "tier": "frontier", "deployments": [_dep(ups["ext"], "ext")]},
            ],
            "routing": {
                "fallbacks": {"primary": ["backup", "external"]},
                "retry": {"max_attempts": 3},
                **routing,
            },
        }
    )


@pytest.fixture
async def table(
    ups: dict[str, FaultyUpstream], tmp_path: Path
) -> AsyncIterator[tuple[ModelTable, AppConfig]]:
    app = _config(ups)
    t = ModelTable.build(app, builtin_registry(), Resources(tmp_path))
    await t.start()
    for dep in t.deployments():
        dep.breaker = CircuitBreaker(BreakerSettings(failure_threshold=2, reset_after_s=30))
    yield t, app
    await t.aclose()


def _ids(deps: tuple[Deployment, ...] | list[Deployment]) -> list[str]:
    return [d.id for d in deps]


async def _serve(
    router: Router, sensitive: bool = False, model: str = "primary"
) -> FailoverResult[ChatCompletion]:
    decision = router.route(
        RouteRequest(model=model, capability="chat", text="hi", sensitive=sensitive), ANYONE
    )
    req = ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )

    async def attempt(dep: Deployment) -> ChatCompletion:
        call = CallContext(request_id="req_router_test", model=dep.upstream_model)
        return await dep.provider.chat(req, call)

    return await run_with_failover(decision.candidates, attempt, RETRY, "req_router_test")


def test_candidates_are_retries_on_replicas_then_each_fallback_replica_once(
    ups: dict[str, FaultyUpstream], tmp_path: Path
) -> None:
    app = _config(ups)
    table = ModelTable.build(app, builtin_registry(), Resources(tmp_path))
    router = Router(table, app.routing)
    decision = router.route(RouteRequest(model="primary", capability="chat"), ANYONE)
    ids = _ids(decision.candidates)
    assert sorted(ids[:3]) in (["p1", "p1", "p2"], ["p1", "p2", "p2"])
    assert ids[0] != ids[1]  # the retry goes to the other replica first
    assert ids[3:] == ["fb", "ext"]
    assert decision.reason == "explicit"


def test_sensitive_candidates_never_include_the_frontier_fallback(
    ups: dict[str, FaultyUpstream], tmp_path: Path
) -> None:
    app = _config(ups)
    router = Router(ModelTable.build(app, builtin_registry(), Resources(tmp_path)), app.routing)
    decision = router.route(
        RouteRequest(model="primary", capability="chat", sensitive=True), ANYONE
    )
    assert "ext" not in _ids(decision.candidates)
    assert all(d.model.tier == "self-hosted" for d in decision.candidates)


@pytest.mark.anyio
async def test_a_failing_replica_is_covered_by_the_other(
    table: tuple[ModelTable, AppConfig], ups: dict[str, FaultyUpstream]
) -> None:
    t, app = table
    router = Router(t, app.routing)
    ups["p1"].set_default(error(500))
    served = Counter()
    for _ in range(4):
        res = await _serve(router)
        served[res.deployment.id] += 1
    assert served == {"p2": 4}
    # p1 opened after two failures and then got no more calls.
    assert ups["p1"].request_count == 2
    assert t.lookup("primary") is not None
    p1 = next(d for d in t.deployments() if d.id == "p1")
    assert p1.breaker.state == "open"
    # The upstream was asked for its own model name.
    assert {r.model for r in ups["p2"].requests} == {"p2-upstream"}


@pytest.mark.anyio
async def test_primary_down_falls_back_to_the_next_model(
    table: tuple[ModelTable, AppConfig], ups: dict[str, FaultyUpstream]
) -> None:
    t, app = table
    router = Router(t, app.routing)
    ups["p1"].set_default(error(503))
    ups["p2"].set_default(error(502))
    res = await _serve(router)
    assert res.deployment.id == "fb"
    assert res.deployment.model.name == "backup"
    assert res.attempts == 4
    assert ups["p1"].request_count + ups["p2"].request_count == 3
    assert ups["ext"].request_count == 0
    assert res.value.choices[0].message.content == "fb0 fb1 fb2 "


@pytest.mark.anyio
async def test_sensitive_request_fails_closed_instead_of_reaching_the_frontier(
    table: tuple[ModelTable, AppConfig], ups: dict[str, FaultyUpstream]
) -> None:
    t, app = table
    router = Router(t, app.routing)
    for name in ("p1", "p2", "fb"):
        ups[name].set_default(error(500))
    with pytest.raises(UpstreamError):
        await _serve(router, sensitive=True)
    assert ups["ext"].request_count == 0
    # Not sensitive: the same outage is served by the frontier fallback.
    res = await _serve(router)
    assert res.deployment.id == "ext"


@pytest.mark.anyio
async def test_all_breakers_open_is_503_without_calling_anyone(
    table: tuple[ModelTable, AppConfig], ups: dict[str, FaultyUpstream]
) -> None:
    t, app = table
    router = Router(t, app.routing)
    for dep in t.deployments():
        dep.breaker.record_failure()
        dep.breaker.record_failure()
    with pytest.raises(ServiceUnavailableError) as info:
        await _serve(router)
    assert sum(u.request_count for u in ups.values()) == 0
    assert int(info.value.headers["retry-after"]) >= 29


@pytest.mark.anyio
async def test_one_at_a_time_traffic_is_spread_over_replicas(
    table: tuple[ModelTable, AppConfig], ups: dict[str, FaultyUpstream]
) -> None:
    t, app = table
    router = Router(t, app.routing)
    served = Counter()
    for _ in range(6):
        served[(await _serve(router)).deployment.id] += 1
    assert served == {"p1": 3, "p2": 3}
    assert ups["p1"].request_count == ups["p2"].request_count == 3


@pytest.mark.anyio
async def test_tracked_stream_counts_in_flight_and_mid_stream_failures(
    table: tuple[ModelTable, AppConfig], ups: dict[str, FaultyUpstream]
) -> None:
    t, _ = table
    p1 = next(d for d in t.deployments() if d.id == "p1")
    req = ChatCompletionRequest.model_validate(
        {"model": "primary", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    call = CallContext(request_id="req_router_test", model=p1.upstream_model)
    # Cut after two chunks: the failure happened after the first byte reached the
    # client, which only the tracking wrapper sees.
    ups["p1"].script(reset(after=2), reset(after=0))
    stream = p1.track(p1.provider.chat_stream(req, call))
    assert await anext(stream)
    assert p1.in_flight == 1
    with pytest.raises(UpstreamError):
        async for _ in stream:
            pass
    assert p1.in_flight == 0
    assert p1.breaker.consecutive_failures == 1
    # A failure before the first item is the failover's to count, not counted twice.
    with pytest.raises(UpstreamError):
        await anext(p1.track(p1.provider.chat_stream(req, call)))
    assert p1.in_flight == 0
    assert p1.breaker.consecutive_failures == 1
