"""``GET /metrics`` on a minimal Starlette app: auth, exposition, scrape-time gauges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from airlock.access.authenticate import Authenticator
from airlock.access.master_key import hash_key
from airlock.access.principal import Principal
from airlock.api.context import RequestContext
from airlock.api.metrics import metrics
from airlock.api.responses import error_response, json_response
from airlock.errors import AirlockError
from airlock.metrics import Metrics
from airlock.routing.breaker import BreakerSettings, CircuitBreaker

MASTER = "alk_master_for_tests_0123456789"
USER = "user-token-for-tests"
SECRET = "my secret prompt"


@dataclass
class _Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Dep:
    id: str
    breaker: CircuitBreaker
    in_flight: int = 0


@dataclass
class _Table:
    deps: list[_Dep]

    def deployments(self) -> list[_Dep]:
        return self.deps


async def _user_verifier(token: str) -> Principal | None:
    if token == USER:
        return Principal(id="key_user", kind="api_key", tenant="acme", name="app")
    return None


@dataclass
class _Gateway:
    metrics: Metrics | None
    table: _Table
    authenticator: Authenticator = field(
        default_factory=lambda: Authenticator(hash_key(MASTER), (_user_verifier,))
    )

    async def authenticate(self, request: Request) -> Principal:
        return await self.authenticator.authenticate(request.headers.get("authorization"))


async def _airlock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AirlockError)
    return error_response(exc)


def _app(gw: _Gateway) -> Starlette:
    async def chat(request: Request) -> Response:
        # Stands in for a handler and the meter: the caller's model name is in the context.
        ctx = RequestContext(request_id="req_route0001", method="POST", path="/chat")
        ctx.endpoint = "chat.completions"
        ctx.requested_model = request.query_params.get("model")
        ctx.status = 200
        assert gw.metrics is not None
        gw.metrics.observe_request(ctx)
        return json_response({})

    app = Starlette(
        routes=[Route("/metrics", metrics, methods=["GET"]), Route("/chat", chat)],
        exception_handlers={AirlockError: _airlock_error},
    )
    app.state.gateway = gw
    return app


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def gw(clock: _Clock) -> _Gateway:
    deps = [
        _Dep("local@0", CircuitBreaker(BreakerSettings(2, 10.0), clock)),
        _Dep("openai-eu", CircuitBreaker(BreakerSettings(2, 10.0), clock)),
    ]
    return _Gateway(Metrics(["smollm2"], [d.id for d in deps]), _Table(deps))


@pytest.fixture
def client(gw: _Gateway) -> Iterator[TestClient]:
    with TestClient(_app(gw)) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _sample(text: str, name: str, **labels: str) -> float | None:
    """A sample's value as a scraper parses it (label order is the library's business)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def _scrape(client: TestClient) -> str:
    r = client.get("/metrics", headers=_auth(MASTER))
    assert r.status_code == 200
    return r.text


def test_without_a_key_metrics_answer_401(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert b"airlock_" not in r.content


def test_a_non_admin_key_gets_403(client: TestClient) -> None:
    r = client.get("/metrics", headers=_auth(USER))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"


def test_an_admin_scrape_gets_the_text_exposition(client: TestClient) -> None:
    r = client.get("/metrics", headers=_auth(MASTER))
    assert r.status_code == 200
    # No Accept header: the classic text format every Prometheus reads.
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert _sample(r.text, "airlock_breaker_state", deployment="openai-eu") == 0
    assert "# TYPE airlock_requests_total counter" in r.text


def test_a_scraper_asking_for_openmetrics_gets_it(client: TestClient) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    r = client.get("/metrics", headers={**_auth(MASTER), "accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")


def test_a_secret_model_name_is_scraped_as_other(client: TestClient) -> None:
    assert client.get("/chat", params={"model": SECRET}).status_code == 200
    assert client.get("/chat", params={"model": "smollm2"}).status_code == 200
    text = _scrape(client)
    assert "secret" not in text
    labels = {"endpoint": "chat.completions", "status_class": "2xx", "error_type": "none"}
    assert _sample(text, "airlock_requests_total", **labels, model="other") == 1
    assert _sample(text, "airlock_requests_total", **labels, model="smollm2") == 1


def test_breaker_state_and_in_flight_are_read_at_scrape_time(
    client: TestClient, gw: _Gateway, clock: _Clock
) -> None:
    dep = gw.table.deps[1]
    dep.breaker.record_failure()
    dep.breaker.record_failure()  # threshold 2: open
    dep.in_flight = 3
    text = _scrape(client)
    assert _sample(text, "airlock_breaker_state", deployment="openai-eu") == 2
    assert _sample(text, "airlock_in_flight", deployment="openai-eu") == 3
    assert _sample(text, "airlock_breaker_state", deployment="local@0") == 0
    clock.now += 10.0  # reset_after_s passed: half-open, without any call
    text = _scrape(client)
    assert _sample(text, "airlock_breaker_state", deployment="openai-eu") == 1
    dep.breaker.record_success()
    dep.in_flight = 0
    text = _scrape(client)
    assert _sample(text, "airlock_breaker_state", deployment="openai-eu") == 0
    assert _sample(text, "airlock_in_flight", deployment="openai-eu") == 0


def test_anonymous_scrape_when_the_operator_allows_it(gw: _Gateway) -> None:
    assert gw.metrics is not None
    gw.metrics.allow_anonymous_scrape = True
    with TestClient(_app(gw)) as client:
        r = client.get("/metrics")
    assert r.status_code == 200
    assert "airlock_requests_total" in r.text


def test_metrics_disabled_answers_503_to_an_admin_and_401_to_others(gw: _Gateway) -> None:
    gw.metrics = None
    with TestClient(_app(gw)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=_auth(USER)).status_code == 403
        r = client.get("/metrics", headers=_auth(MASTER))
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "service_unavailable"
