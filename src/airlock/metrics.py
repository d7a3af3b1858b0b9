"""Prometheus metrics that cannot carry content (invariant 1).

Every label value comes from a bounded set fixed at construction: the model names and
deployment ids of the config, or a vocabulary written in airlock's code. Anything
else becomes ``other`` (and a missing value ``none``), so a caller-supplied model name,
a path or an error message can never become a label, and the series count stays
bounded whatever the traffic.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (never the global default):
several gateways in one process (tests) do not collide, and nothing is registered at
import time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Literal, Protocol, TypeVar

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from airlock.api.context import RequestContext
from airlock.errors import UpstreamError, UpstreamTimeoutError
from airlock.ledger import ERROR_TYPES, ROUTE_REASONS
from airlock.ledger.prices import PriceCatalog, cost
from airlock.privacy.detector import ENTITY_TYPES

__all__ = [
    "ATTEMPT_OUTCOMES",
    "ENDPOINTS",
    "NONE",
    "OTHER",
    "AttemptOutcome",
    "Metrics",
    "count_attempts",
]

OTHER = "other"
NONE = "none"

#: ``RequestContext.endpoint`` values the handlers set.
ENDPOINTS: frozenset[str] = frozenset(
    {"chat.completions", "completions", "embeddings", "responses", "models", "admin"}
)
# Probes and scrapes are not traffic: counting them would drown the request series.
_UNCOUNTED_PATHS = frozenset({"/health", "/metrics"})

AttemptOutcome = Literal["success", "retryable_error", "error", "timeout", "cancelled"]
ATTEMPT_OUTCOMES: frozenset[str] = frozenset(
    {"success", "retryable_error", "error", "timeout", "cancelled"}
)

# ``RequestContext.error_type`` holds an error's ``code`` or ``type`` (api/app.py) or a
# condition the gateway names itself; all are literals in airlock's code.
_ERROR_TYPES: frozenset[str] = ERROR_TYPES | {
    "authentication",
    "internal_error",
    "invalid_value",
    "method_not_allowed",
    "unknown_url",
    "no_allowed_deployment",
    "no_compliant_deployment",
    "upstream_malformed",
    "upstream_rate_limited",
    "upstream_rejected",
    "upstream_unreachable",
    "requests",
    "tokens",
}
_BREAKER: dict[str, int] = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
# Seconds; requests range from a cached embedding to a long frontier generation.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

T = TypeVar("T")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


D = TypeVar("D", bound=_HasId)


def _bounded(value: str | None, known: frozenset[str]) -> str:
    if value is None or value == "":
        return NONE
    return value if value in known else OTHER


def _status_class(status: int) -> str:
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return NONE  # no response was started (e.g. the client went away first)


class Metrics:
    """The gateway's metrics; label values bounded by ``models`` and ``deployments``."""

    def __init__(
        self,
        models: Iterable[str],
        deployments: Iterable[str],
        *,
        prices: PriceCatalog | None = None,
        allow_anonymous_scrape: bool = False,
    ) -> None:
        # "auto" is the router's virtual model: a requested model, never a served one.
        self._models = frozenset(models) | {"auto"}
        self._deployments = frozenset(deployments)
        self._prices = prices
        #: Read by ``GET /metrics``: serve without an admin key (see api/metrics.py).
        self.allow_anonymous_scrape = allow_anonymous_scrape
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "airlock_requests",
            "Requests handled, by endpoint, model, status class and error type.",
            ("endpoint", "model", "status_class", "error_type"),
            registry=reg,
        )
        self.request_duration = Histogram(
            "airlock_request_duration_seconds",
            "Time from receiving a request to finishing its response.",
            ("endpoint", "model"),
            buckets=_DURATION_BUCKETS,
            registry=reg,
        )
        self.ttft = Histogram(
            "airlock_time_to_first_token_seconds",
            "Time from receiving a request to its first generated token.",
            ("model",),
            buckets=_TTFT_BUCKETS,
            registry=reg,
        )
        self.tokens = Counter(
            "airlock_tokens",
            "Tokens processed, by model and direction (prompt or completion).",
            ("model", "direction"),
            registry=reg,
        )
        self.cost = Counter(
            "airlock_cost_usd", "Cost of served requests in US dollars.", ("model",), registry=reg
        )
        self.in_flight = Gauge(
            "airlock_in_flight",
            "Requests currently in flight per deployment.",
            ("deployment",),
            registry=reg,
        )
        self.upstream_attempts = Counter(
            "airlock_upstream_attempts",
            "Calls to a deployment, by outcome (retries and fallbacks count separately).",
            ("deployment", "outcome"),
            registry=reg,
        )
        self.breaker_state = Gauge(
            "airlock_breaker_state",
            "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
            ("deployment",),
            registry=reg,
        )
        self.sensitive_requests = Counter(
            "airlock_sensitive_requests",
            "Requests judged sensitive, once per distinct entity type they contain.",
            ("entity_type",),
            registry=reg,
        )
        self.routed = Counter(
            "airlock_routed",
            "Routing decisions, by served model and reason.",
            ("model", "reason"),
            registry=reg,
        )
        # Known deployments appear in the first scrape, healthy and idle.
        for dep in sorted(self._deployments):
            self.breaker_state.labels(dep).set(0)
            self.in_flight.labels(dep).set(0)

    # -- label bounding -------------------------------------------------------------

    def model_label(self, name: str | None) -> str:
        return _bounded(name, self._models)

    def deployment_label(self, dep_id: str | None) -> str:
        return _bounded(dep_id, self._deployments)

    # -- recording ------------------------------------------------------------------

    def observe_request(self, ctx: RequestContext, *, cost_usd: float | None = None) -> None:
        """Record one finished request from its metadata (call once, when it ends).

        Fits ``api.meter.Observer``. ``cost_usd`` defaults to the served model's price
        (from ``prices``) times the request's tokens, as in its ledger record.
        """
        if ctx.path in _UNCOUNTED_PATHS:
            return
        endpoint = _bounded(ctx.endpoint, ENDPOINTS)
        model = self.model_label(ctx.served_model or ctx.requested_model)
        error = _bounded(ctx.error_type, _ERROR_TYPES)
        self.requests.labels(endpoint, model, _status_class(ctx.status), error).inc()
        elapsed = ctx.elapsed_ms() / 1000
        self.request_duration.labels(endpoint, model).observe(max(elapsed, 0.0))
        ttft = ctx.ttft_ms()
        if ttft is not None:
            self.ttft.labels(model).observe(max(ttft / 1000, 0.0))
        if ctx.prompt_tokens > 0:
            self.tokens.labels(model, "prompt").inc(ctx.prompt_tokens)
        if ctx.completion_tokens > 0:
            self.tokens.labels(model, "completion").inc(ctx.completion_tokens)
        spent = self._cost(ctx) if cost_usd is None else cost_usd
        if spent > 0:
            self.cost.labels(model).inc(spent)
        if ctx.route_reason is not None:
            self.routed.labels(model, _bounded(ctx.route_reason, ROUTE_REASONS)).inc()
        if ctx.sensitive:
            # Entity types only (never values); a request sensitive by topic alone has none.
            types = {_bounded(t, ENTITY_TYPES) for t in ctx.entity_counts} or {NONE}
            for entity_type in sorted(types):
                self.sensitive_requests.labels(entity_type).inc()

    def _cost(self, ctx: RequestContext) -> float:
        if self._prices is None or ctx.deployment is None or ctx.served_model is None:
            return 0.0  # nothing was served, or no prices known
        price = self._prices.models.get(ctx.served_model)
        if price is None:
            return 0.0
        return cost(price, max(ctx.prompt_tokens, 0), max(ctx.completion_tokens, 0))

    def observe_attempt(self, deployment: str, outcome: AttemptOutcome) -> None:
        self.upstream_attempts.labels(
            self.deployment_label(deployment), _bounded(outcome, ATTEMPT_OUTCOMES)
        ).inc()

    def set_breaker(self, deployment: str, state: str | int) -> None:
        """``state``: ``closed``/``half_open``/``open`` (``BreakerState``) or 0/1/2."""
        value = _BREAKER.get(state) if isinstance(state, str) else state
        if value not in (0, 1, 2):
            raise ValueError("breaker state must be closed, half_open, open or 0, 1, 2")
        self.breaker_state.labels(self.deployment_label(deployment)).set(value)

    def set_in_flight(self, deployment: str, count: int) -> None:
        self.in_flight.labels(self.deployment_label(deployment)).set(count)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric in the format the scraper's ``Accept`` header asks for
        (OpenMetrics or Prometheus text; text 0.0.4, which every scraper reads, when
        it asks for neither), and its content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


def count_attempts(
    metrics: Metrics, attempt: Callable[[D], Awaitable[T]]
) -> Callable[[D], Awaitable[T]]:
    """Wrap a failover ``attempt`` so each call is counted in ``upstream_attempts``."""
    cancelled = anyio.get_cancelled_exc_class

    async def counted(dep: D) -> T:
        try:
            value = await attempt(dep)
        except UpstreamTimeoutError:
            metrics.observe_attempt(dep.id, "timeout")
            raise
        except UpstreamError as exc:
            metrics.observe_attempt(dep.id, "retryable_error" if exc.retryable else "error")
            raise
        except BaseException as exc:
            metrics.observe_attempt(
                dep.id, "cancelled" if isinstance(exc, cancelled()) else "error"
            )
            raise
        metrics.observe_attempt(dep.id, "success")
        return value

    return counted
