"""Metrics: what each observation records, and that no label can carry content."""

from __future__ import annotations

import random
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from airlock.access.principal import Principal
from airlock.api.context import RequestContext
from airlock.errors import BadRequestError, UpstreamError, UpstreamTimeoutError
from airlock.ledger import ERROR_TYPES, ROUTE_REASONS
from airlock.ledger.prices import ModelPrice, PriceCatalog
from airlock.metrics import ATTEMPT_OUTCOMES, ENDPOINTS, NONE, OTHER, Metrics, count_attempts
from airlock.privacy.detector import ENTITY_TYPES

MODELS = ("smollm2", "gpt-4o")
DEPLOYMENTS = ("smollm2@0", "openai-eu")
SECRET = "my secret prompt about 536-22-1234"


def _ctx(**fields: object) -> RequestContext:
    ctx = RequestContext(request_id="req_test0001", method="POST", path="/v1/x")
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def _value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def _requests(m: Metrics, endpoint: str, model: str, status: str, error: str) -> float | None:
    labels = {"endpoint": endpoint, "model": model, "status_class": status, "error_type": error}
    return m.registry.get_sample_value("airlock_requests_total", labels)


def _label_values(m: Metrics) -> dict[str, set[str]]:
    """Every label value in the exposition, by label name (parsed, as a scraper sees it)."""
    body, _ = m.render()
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            for key, value in sample.labels.items():
                if key != "le":
                    seen.setdefault(key, set()).add(value)
    return seen


def test_a_request_is_counted_with_its_duration_tokens_cost_and_route() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    ctx = _ctx(
        endpoint="chat.completions",
        requested_model="auto",
        served_model="gpt-4o",
        deployment="openai-eu",
        route_reason="auto:complex",
        status=200,
        prompt_tokens=120,
        completion_tokens=30,
    )
    ctx.first_token_at = ctx.started + 0.05
    m.observe_request(ctx, cost_usd=0.0042)
    labels = {"endpoint": "chat.completions", "model": "gpt-4o"}
    assert _requests(m, "chat.completions", "gpt-4o", "2xx", NONE) == 1
    assert _value(m, "airlock_request_duration_seconds_count", **labels) == 1
    assert _value(m, "airlock_time_to_first_token_seconds_count", model="gpt-4o") == 1
    ttft_sum = _value(m, "airlock_time_to_first_token_seconds_sum", model="gpt-4o")
    assert ttft_sum == pytest.approx(0.05, abs=0.001)
    assert _value(m, "airlock_tokens_total", model="gpt-4o", direction="prompt") == 120
    assert _value(m, "airlock_tokens_total", model="gpt-4o", direction="completion") == 30
    assert _value(m, "airlock_cost_usd_total", model="gpt-4o") == pytest.approx(0.0042)
    assert _value(m, "airlock_routed_total", model="gpt-4o", reason="auto:complex") == 1


def test_an_error_is_counted_by_status_class_and_error_type() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    m.observe_request(_ctx(endpoint="embeddings", status=401, error_type="authentication"))
    unavailable = "service_unavailable"
    m.observe_request(
        _ctx(
            endpoint="chat.completions",
            requested_model="smollm2",
            status=503,
            error_type=unavailable,
        )
    )
    assert _requests(m, "embeddings", NONE, "4xx", "authentication") == 1
    assert _requests(m, "chat.completions", "smollm2", "5xx", unavailable) == 1
    # Nothing was routed or generated: no token, cost, TTFT or route series.
    body, _ = m.render()
    assert b"airlock_tokens_total{" not in body
    assert b"airlock_routed_total{" not in body
    assert b"airlock_time_to_first_token_seconds_count{" not in body


def test_a_caller_supplied_model_name_never_becomes_a_label() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    m.observe_request(
        _ctx(
            endpoint=SECRET,
            requested_model=SECRET,
            served_model=None,
            status=404,
            error_type=SECRET,
            route_reason=SECRET,
        )
    )
    m.observe_attempt(SECRET, "success")
    m.set_breaker(SECRET, "open")
    m.set_in_flight(SECRET, 3)
    body, _ = m.render()
    assert b"secret" not in body
    # The whole identifier: bare digits like "536" can occur in a _created timestamp.
    assert b"536-22-1234" not in body
    assert _requests(m, OTHER, OTHER, "4xx", OTHER) == 1
    assert _value(m, "airlock_routed_total", model=OTHER, reason=OTHER) == 1
    assert _value(m, "airlock_breaker_state", deployment=OTHER) == 2


def test_every_label_value_comes_from_a_bounded_vocabulary_whatever_the_input() -> None:
    rng = random.Random(7)
    alphabet = string.printable + "éü€😀"

    def noise() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))

    def pick(known: tuple[str, ...] | frozenset[str]) -> str | None:
        roll = rng.random()
        if roll < 0.1:
            return None
        return rng.choice(sorted(known)) if roll < 0.5 else noise()

    m = Metrics(MODELS, DEPLOYMENTS)
    for _ in range(400):
        ctx = _ctx(
            endpoint=pick(ENDPOINTS),
            requested_model=pick(MODELS),
            served_model=pick(MODELS),
            route_reason=pick(ROUTE_REASONS),
            error_type=pick(ERROR_TYPES),
            status=rng.choice([0, 200, 400, 404, 429, 500, 502, 999]),
            prompt_tokens=rng.randint(0, 50),
            completion_tokens=rng.randint(0, 50),
        )
        if rng.random() < 0.5:
            ctx.first_token_at = ctx.started + 0.01
        ctx.sensitive = True
        ctx.entity_counts = {pick(ENTITY_TYPES) or "": 1 for _ in range(rng.randint(0, 3))}
        m.observe_request(ctx, cost_usd=rng.random() / 100)
        m.observe_attempt(pick(DEPLOYMENTS) or "", rng.choice(sorted(ATTEMPT_OUTCOMES)))  # type: ignore[arg-type]
    seen = _label_values(m)
    bounded = {NONE, OTHER}
    assert seen["endpoint"] <= ENDPOINTS | bounded
    assert seen["model"] <= set(MODELS) | {"auto"} | bounded
    assert seen["deployment"] <= set(DEPLOYMENTS) | bounded
    assert seen["reason"] <= ROUTE_REASONS | bounded
    assert seen["entity_type"] <= ENTITY_TYPES | bounded
    assert seen["status_class"] <= {"2xx", "4xx", "5xx", NONE}
    assert seen["direction"] == {"prompt", "completion"}
    assert seen["outcome"] <= ATTEMPT_OUTCOMES
    assert OTHER in seen["model"]
    assert OTHER in seen["endpoint"]


def test_sensitive_requests_count_each_entity_type_once_per_request() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    m.observe_request(
        _ctx(status=200, sensitive=True, entity_counts={"US_SSN": 2, "EMAIL_ADDRESS": 1})
    )
    m.observe_request(_ctx(status=200, sensitive=True, entity_counts={}))  # a topic only
    m.observe_request(_ctx(status=200, sensitive=False))
    assert _value(m, "airlock_sensitive_requests_total", entity_type="US_SSN") == 1
    assert _value(m, "airlock_sensitive_requests_total", entity_type="EMAIL_ADDRESS") == 1
    # Sensitive by topic only: counted, with no entity type.
    assert _value(m, "airlock_sensitive_requests_total", entity_type=NONE) == 1
    assert len(_label_values(m)["entity_type"]) == 3


def test_cost_comes_from_the_served_models_price_unless_given() -> None:
    prices = PriceCatalog({"gpt-4o": ModelPrice("gpt-4o", 2.5, 10.0)})
    m = Metrics(MODELS, DEPLOYMENTS, prices=prices)
    served = {"served_model": "gpt-4o", "deployment": "openai-eu", "status": 200}
    m.observe_request(_ctx(**served, prompt_tokens=1000, completion_tokens=100))
    assert _value(m, "airlock_cost_usd_total", model="gpt-4o") == pytest.approx(0.0035)
    m.observe_request(_ctx(**served, prompt_tokens=1000), cost_usd=1.0)
    assert _value(m, "airlock_cost_usd_total", model="gpt-4o") == pytest.approx(1.0035)
    # Routed but never served (no deployment), or a model without a price: no cost.
    m.observe_request(_ctx(served_model="gpt-4o", status=503, prompt_tokens=1000))
    m.observe_request(_ctx(served_model="smollm2", deployment="smollm2@0", prompt_tokens=9))
    assert _value(m, "airlock_cost_usd_total", model="gpt-4o") == pytest.approx(1.0035)
    assert _value(m, "airlock_cost_usd_total", model="smollm2") is None


def test_health_probes_and_scrapes_are_not_counted_as_requests() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    for path in ("/health", "/metrics"):
        ctx = RequestContext(request_id="req_test0002", method="GET", path=path)
        ctx.status = 200
        m.observe_request(ctx)
    body, _ = m.render()
    assert b"airlock_requests_total{" not in body


def test_breaker_gauge_maps_states_to_numbers_and_rejects_others() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    assert _value(m, "airlock_breaker_state", deployment="openai-eu") == 0  # pre-created
    assert _value(m, "airlock_in_flight", deployment="openai-eu") == 0
    for state, number in (("open", 2), ("half_open", 1), ("half-open", 1), ("closed", 0), (2, 2)):
        m.set_breaker("openai-eu", state)
        assert _value(m, "airlock_breaker_state", deployment="openai-eu") == number
    with pytest.raises(ValueError, match="breaker state"):
        m.set_breaker("openai-eu", "melted")
    with pytest.raises(ValueError, match="breaker state"):
        m.set_breaker("openai-eu", 7)
    m.set_in_flight("smollm2@0", 4)
    assert _value(m, "airlock_in_flight", deployment="smollm2@0") == 4


def test_each_instance_has_its_own_registry_and_the_global_one_is_untouched() -> None:
    before = {name for name in REGISTRY._names_to_collectors if name.startswith("airlock_")}
    a, b = Metrics(MODELS, DEPLOYMENTS), Metrics(MODELS, DEPLOYMENTS)  # no duplicate error
    a.observe_request(_ctx(endpoint="models", status=200))
    assert _requests(a, "models", NONE, "2xx", NONE) == 1
    assert _requests(b, "models", NONE, "2xx", NONE) is None
    after = {name for name in REGISTRY._names_to_collectors if name.startswith("airlock_")}
    assert before == after == set()


def test_render_returns_the_text_exposition_and_its_content_type() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    body, content_type = m.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    om_body, om_type = m.render("application/openmetrics-text; version=1.0.0")
    assert om_type.startswith("application/openmetrics-text")
    assert om_body.endswith(b"# EOF\n")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {
        "airlock_requests",
        "airlock_request_duration_seconds",
        "airlock_time_to_first_token_seconds",
        "airlock_tokens",
        "airlock_cost_usd",
        "airlock_in_flight",
        "airlock_upstream_attempts",
        "airlock_breaker_state",
        "airlock_sensitive_requests",
        "airlock_routed",
    } <= names


@dataclass
class _Dep:
    id: str


@pytest.mark.anyio
async def test_count_attempts_records_each_outcome_and_passes_errors_through() -> None:
    m = Metrics(MODELS, DEPLOYMENTS)
    dep = _Dep("openai-eu")

    async def ok(d: _Dep) -> str:
        return "value"

    def failing(exc: BaseException) -> Callable[[_Dep], Awaitable[str]]:
        async def attempt(d: _Dep) -> str:
            raise exc

        return attempt

    assert await count_attempts(m, ok)(dep) == "value"
    cases: list[tuple[BaseException, str]] = [
        (UpstreamError("upstream failed", retryable=True), "retryable_error"),
        (UpstreamError("upstream failed", retryable=False), "error"),
        (UpstreamTimeoutError("timed out", retryable=True), "timeout"),
        (BadRequestError("bad"), "error"),
    ]
    for exc, _outcome in cases:
        with pytest.raises(type(exc)):
            await count_attempts(m, failing(exc))(dep)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await count_attempts(m, _sleep_forever)(dep)
    for outcome, expected in (
        ("success", 1),
        ("retryable_error", 1),
        ("error", 2),
        ("timeout", 1),
        ("cancelled", 1),
    ):
        got = _value(m, "airlock_upstream_attempts_total", deployment="openai-eu", outcome=outcome)
        assert got == expected, outcome


async def _sleep_forever(d: _Dep) -> str:
    await anyio.sleep_forever()
    return "never"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_principal_is_not_a_label() -> None:
    # Per-key series would be unbounded (keys are created at run time) and identify callers.
    m = Metrics(MODELS, DEPLOYMENTS)
    ctx = _ctx(status=200, endpoint="models")
    ctx.principal = Principal(id="key_abc", kind="api_key", tenant="acme", name="secret-app")
    m.observe_request(ctx)
    body, _ = m.render()
    assert b"key_abc" not in body
    assert b"acme" not in body
    assert b"secret-app" not in body
