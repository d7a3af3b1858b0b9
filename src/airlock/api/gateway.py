"""The running gateway: settings, model table and the stages a request passes through."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar, cast

from starlette.requests import Request

from airlock.access.authenticate import Authenticator
from airlock.access.principal import Principal
from airlock.api.context import RequestContext
from airlock.config import Settings
from airlock.errors import AuthenticationError, BadRequestError, BodyTooLargeError
from airlock.routing.failover import FailoverResult, RetrySettings, run_with_failover
from airlock.routing.router import AUTO, Prefer, RouteDecision, Router, RouteRequest
from airlock.routing.table import Deployment, ModelTable

__all__ = ["Gateway", "context_of", "gateway_of"]

_log = logging.getLogger("airlock.gateway")
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
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
    authenticator: Authenticator
    started_at: int

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
            principal = await self.authenticator.authenticate(request.headers.get("authorization"))
        except AuthenticationError:
            ctx.error_type = "authentication"
            raise
        ctx.principal = principal
        return principal

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

    def route(self, request: Request, route: RouteRequest, principal: Principal) -> RouteDecision:
        ctx = context_of(request)
        decision = self.router.route(_with_overrides(request, route), principal)
        ctx.requested_model = route.model if route.model == AUTO else decision.model.name
        ctx.served_model = decision.model.name
        ctx.route_reason = decision.reason
        return decision

    async def call(
        self,
        request: Request,
        decision: RouteDecision,
        attempt: Callable[[Deployment], Awaitable[T]],
    ) -> FailoverResult[T]:
        ctx = context_of(request)
        result = await run_with_failover(decision.candidates, attempt, self.retry, ctx.request_id)
        dep = result.deployment
        self.router.balancer.served(decision.affinity_key, dep.id)
        ctx.deployment = dep.id
        ctx.region = dep.region
        ctx.served_model = dep.model.name
        if dep.model is not decision.model.config:
            ctx.route_reason = "fallback:down"
        return result

    def note_unknown_fields(self, request: Request, names: list[str]) -> None:
        """Log the names of ignored fields at debug level; never their values.

        Only names shaped like OpenAI parameters are logged: a caller could put content
        into a field name, so anything else is only counted.
        """
        if not names:
            return
        ctx = context_of(request)
        safe = [n for n in names if _PARAM_NAME.match(n)]
        ctx.unknown_fields = tuple(safe[:32])
        _log.debug(
            "ignored_unknown_fields",
            extra={
                "request_id": ctx.request_id,
                "fields": list(ctx.unknown_fields),
                "unnamed_fields": len(names) - len(safe),
            },
        )


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
