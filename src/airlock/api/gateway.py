"""The running gateway: settings, model table and the stages a request passes through."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from starlette.requests import Request

from airlock.access.authenticate import Authenticator
from airlock.access.principal import Principal
from airlock.api.context import RequestContext
from airlock.config import Capability, Settings
from airlock.errors import BodyTooLargeError, ModelNotFoundError, UnsupportedParameterError
from airlock.routing.table import Deployment, ModelTable

__all__ = ["Gateway", "context_of", "gateway_of"]

_log = logging.getLogger("airlock.gateway")
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


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
    authenticator: Authenticator
    started_at: int

    def visible_models(self, principal: Principal) -> list[str]:
        return [e.name for e in self.table.visible_to(principal)]

    async def authenticate(self, request: Request) -> Principal:
        ctx = context_of(request)
        try:
            principal = await self.authenticator.authenticate(request.headers.get("authorization"))
        except Exception:
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

    def route(
        self, request: Request, model: str, principal: Principal, capability: Capability
    ) -> Deployment:
        """Pick the deployment that serves ``model`` for this caller."""
        ctx = context_of(request)
        entry = self.table.get(model, principal)
        ctx.requested_model = entry.name
        if capability not in entry.config.capabilities:
            raise UnsupportedParameterError(
                f"The model '{entry.name}' does not support {capability.replace('_', ' ')}; "
                f"it supports: {', '.join(sorted(entry.config.capabilities))}.",
                param="model",
            )
        allowed = [d for d in entry.deployments if principal.may_use_region(d.region)]
        if not allowed:
            raise ModelNotFoundError(model)
        dep = min(allowed, key=lambda d: d.in_flight)
        ctx.served_model = entry.name
        ctx.deployment = dep.id
        ctx.region = dep.region
        ctx.route_reason = "explicit"
        return dep

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


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"The request body is larger than the gateway's limit of {limit} bytes. "
        "Send a smaller request or ask the operator to raise server.max_body_bytes."
    )
