"""The running gateway: settings, model table and the stages a request passes through."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar, cast

import anyio
from starlette.requests import Request

from airlock.access.keys import KeyStore
from airlock.access.principal import Principal
from airlock.api.context import RequestContext
from airlock.api.services import Services
from airlock.config import Settings
from airlock.errors import (
    AirlockError,
    BadRequestError,
    BodyTooLargeError,
    ClientDisconnectedError,
)
from airlock.ledger import error_type_of
from airlock.ledger.runtime import Ledger
from airlock.metrics import Metrics, count_attempts
from airlock.protocol.vocabulary import OPENAI_PARAMETERS
from airlock.routing.failover import FailoverResult, RetrySettings, run_with_failover
from airlock.routing.router import AUTO, Prefer, RouteDecision, Router, RouteRequest
from airlock.routing.table import Deployment, ModelTable

__all__ = ["Gateway", "context_of", "estimate_tokens", "gateway_of"]

_log = logging.getLogger("airlock.gateway")
_PREFER = ("cost", "latency", "quality")

T = TypeVar("T")


def context_of(request: Request) -> RequestContext:
    ctx: RequestContext = request.scope["state"]["ctx"]
    return ctx


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


@dataclass(slots=True)
class Gateway:
    settings: Settings
    table: ModelTable
    router: Router
    services: Services
    metrics: Metrics
    started_at: int

    @property
    def keys(self) -> KeyStore:
        return self.services.keys

    @property
    def ledger(self) -> Ledger:
        return self.services.ledger

    @property
    def retry(self) -> RetrySettings:
        r = self.settings.app.routing.retry
        return RetrySettings(r.max_attempts, r.backoff_base_s, r.backoff_max_s, r.retry_after_cap_s)

    def visible_models(self, principal: Principal) -> list[str]:
        names = [e.name for e in self.table.visible_to(principal)]
        if self.router.has_auto(principal):
            names.append(AUTO)
        return names

    async def authenticate(self, request: Request) -> Principal:
        ctx = context_of(request)
        try:
            principal = await self.services.authenticator.authenticate(
                request.headers.get("authorization")
            )
        except AirlockError as exc:
            ctx.error_type = error_type_of(exc)
            raise
        ctx.principal = principal
        return principal

    async def admit(self, request: Request, principal: Principal, estimated_tokens: int) -> None:
        """Take the caller's rate limit (requests and estimated tokens) or refuse with 429."""
        ctx = context_of(request)
        ctx.reservation = await self.services.limiter.acquire(
            principal.id, principal.rpm, principal.tpm, estimated_tokens
        )

    async def inspect(self, request: Request, texts: list[str], others: Sequence[str] = ()) -> bool:
        """Run the detector once over the main texts (those pseudonymisation can rewrite)
        and every other forwarded string; only entity types and counts are kept.
        Returns whether data was found in the other strings."""
        ctx = context_of(request)
        main = [t for t in texts if t]
        verdict = await self.services.inspector.inspect([*main, *(t for t in others if t)])
        ctx.sensitive = verdict.sensitive
        ctx.entity_counts = verdict.counts()
        return any(e.text_index >= len(main) for e in verdict.entities)

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.app.server.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def prepare(
        self,
        request: Request,
        principal: Principal,
        route: RouteRequest,
        texts: list[str],
        max_tokens: int | None = None,
        others: Sequence[str] = (),
    ) -> RouteDecision:
        """Inspect, admit and route: the stages between parsing and the upstream call.

        ``others``: the request's other forwarded strings (see :mod:`.inspect`). Data
        found there cannot be pseudonymised, so the request then stays self-hosted."""
        if await self.inspect(request, texts, others):
            route = replace(route, can_pseudonymize=False)
        estimate = estimate_tokens(texts)
        await self.admit(request, principal, estimate + (max_tokens or 0))
        return await self.route(request, replace(route, estimated_tokens=estimate), principal)

    async def route(
        self, request: Request, route: RouteRequest, principal: Principal
    ) -> RouteDecision:
        """Choose the model and its candidate deployments, then check the budget.

        From here on the request is metered, whatever happens: one audit record.
        """
        ctx = context_of(request)
        ctx.routed = True
        known = route.model == AUTO or self.table.lookup(route.model) is not None
        ctx.requested_model = route.model if known else "unknown"
        route = replace(_with_overrides(request, route), sensitive=ctx.sensitive)
        decision = self.router.route(route, principal)
        ctx.served_model = decision.model.name
        ctx.route_reason = decision.reason
        price = decision.model.config.price.input_per_mtok
        await self.services.budgets.check(principal, route.estimated_tokens * price / 1e6)
        return decision

    async def call(
        self,
        request: Request,
        decision: RouteDecision,
        attempt: Callable[[Deployment], Awaitable[T]],
    ) -> FailoverResult[T]:
        ctx = context_of(request)
        result = await _unless_disconnected(
            request,
            ctx,
            lambda: run_with_failover(
                decision.candidates,
                count_attempts(self.metrics, attempt),
                self.retry,
                ctx.request_id,
            ),
        )
        dep = result.deployment
        self.router.balancer.served(decision.affinity_key, dep.id)
        ctx.deployment = dep.id
        ctx.region = dep.region
        ctx.tier = dep.model.tier
        ctx.provider = dep.config.provider
        ctx.served_model = dep.model.name
        if dep.model is not decision.candidates[0].model:
            # The router's own first choice (perhaps already a fallback for context or
            # policy) failed; another model in the chain served.
            ctx.route_reason = "fallback:down"
        if ctx.sensitive and dep.model.tier != "self-hosted":
            ctx.route_reason = "policy:pseudonymize"
        return result

    def pseudonymize_for(self, request: Request, dep: Deployment) -> bool:
        """Whether the request must be pseudonymised before ``dep`` sees it: sensitive
        and leaving the self-hosted tier (the router allowed that only under the
        ``pseudonymize`` policy)."""
        return context_of(request).sensitive and dep.model.tier != "self-hosted"

    def note_unknown_fields(self, request: Request, names: list[str]) -> None:
        """Log the names of ignored fields at debug level; never their values.

        Only OpenAI parameter names (ones airlock does not use) are named: a caller
        could put content into a field name, so anything else is only counted.
        """
        if not names:
            return
        ctx = context_of(request)
        known = [n for n in names if n in OPENAI_PARAMETERS]
        ctx.unknown_fields = tuple(known[:32])
        _log.debug(
            "ignored_unknown_fields",
            extra={
                "request_id": ctx.request_id,
                "fields": list(ctx.unknown_fields),
                "unnamed_fields": len(names) - len(known),
            },
        )


async def _unless_disconnected(
    request: Request, ctx: RequestContext, work: Callable[[], Awaitable[T]]
) -> T:
    """Run ``work`` (the upstream call) but cancel it as soon as the client goes away,
    so an abandoned request stops costing upstream capacity."""
    done: list[T] = []
    failed: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        async def run() -> None:
            try:
                done.append(await work())
            except Exception as exc:  # noqa: BLE001 - re-raised below, outside the group
                failed.append(exc)
            finally:
                tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(run)
    if failed:
        raise failed[0]
    if not done:
        ctx.error_type = "client_disconnected"
        raise ClientDisconnectedError()
    return done[0]


def estimate_tokens(texts: list[str]) -> int:
    """A cheap upper-leaning estimate (about 4 characters per token) used before the
    real count is known: for rate limits, budgets and context-window fit."""
    return sum(len(t) + 3 for t in texts) // 4


def _with_overrides(request: Request, route: RouteRequest) -> RouteRequest:
    """Apply the caller's ``x-airlock-prefer`` / ``x-airlock-max-cost-usd`` headers."""
    prefer = request.headers.get("x-airlock-prefer")
    if prefer is not None and prefer not in _PREFER:
        raise BadRequestError(
            "The x-airlock-prefer header must be one of: cost, latency, quality.",
            param="x-airlock-prefer",
        )
    raw_cost = request.headers.get("x-airlock-max-cost-usd")
    max_cost: float | None = None
    if raw_cost is not None:
        try:
            max_cost = float(raw_cost)
        except ValueError:
            max_cost = -1.0
        if not max_cost >= 0:
            raise BadRequestError(
                "The x-airlock-max-cost-usd header must be a non-negative number of dollars.",
                param="x-airlock-max-cost-usd",
            )
    if prefer is None and max_cost is None:
        return route
    return replace(route, prefer=cast(Prefer | None, prefer), max_cost_usd=max_cost)


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"The request body is larger than the gateway's limit of {limit} bytes. "
        "Send a smaller request or ask the operator to raise server.max_body_bytes."
    )
