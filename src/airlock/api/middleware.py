"""Pure-ASGI middleware: request ids, the metadata-only access log, last-resort errors.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through unbuffered.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.api.context import RequestContext, new_request_id, sane_request_id
from airlock.api.responses import error_response
from airlock.errors import InternalServerError

__all__ = ["RequestContextMiddleware"]

_log = logging.getLogger("airlock.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        gateway = getattr(scope["app"].state, "gateway", None) if "app" in scope else None
        ctx = RequestContext(
            request_id=_caller_request_id(headers, gateway) or new_request_id(),
            method=scope["method"],
            path=scope["path"],
        )
        scope.setdefault("state", {})["ctx"] = ctx
        if gateway is not None:
            gateway.services.meter.begin()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctx.status = message["status"]
                out = MutableHeaders(scope=message)
                out["x-request-id"] = ctx.request_id
                if ctx.served_model:
                    out["x-airlock-route"] = ctx.served_model
                if ctx.route_reason:
                    out["x-airlock-route-reason"] = ctx.route_reason
                if ctx.reservation is not None:
                    out.update(ctx.reservation.headers())
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Only the type is logged: exception text may quote request content.
            ctx.error_type = ctx.error_type or "internal_error"
            _log.error(
                "unhandled_error",
                extra={"request_id": ctx.request_id, "exc_type": type(exc).__name__},
            )
            if started:
                raise
            await error_response(
                InternalServerError(
                    f"The server had an error while processing your request "
                    f"(request id {ctx.request_id})."
                )
            )(scope, receive, send_with_id)
        finally:
            _access_log(ctx, _route_path(scope))
            if gateway is not None:
                # Shielded: a request cancelled by a disconnect or shutdown is still metered.
                with anyio.CancelScope(shield=True):
                    await gateway.services.meter.finish(ctx)


def _caller_request_id(headers: Headers, gateway: Any) -> str | None:
    """The caller's ``x-request-id`` when it is sane and holds nothing the detector
    flags (a bare SSN fits the id pattern but must not be logged or stored)."""
    value = sane_request_id(headers.get("x-request-id"))
    if value is None or gateway is None:
        return value
    if gateway.services.inspector.detector.detect(value).sensitive:
        return None
    return value


def _route_path(scope: Scope) -> str:
    """The matched route's template (``/v1/models/{model_id:path}``), never the raw URL
    path: the caller chooses that, and it may carry content (invariant 1)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def _access_log(ctx: RequestContext, path: str) -> None:
    if ctx.path == "/health":
        return
    fields: dict[str, object] = {
        "request_id": ctx.request_id,
        "method": ctx.method,
        "path": path,
        "status": ctx.status,
        "latency_ms": ctx.elapsed_ms(),
    }
    if ctx.principal is not None:
        fields["principal"] = ctx.principal.id
    if ctx.requested_model is not None:
        fields.update(
            requested_model=ctx.requested_model,
            served_model=ctx.served_model,
            deployment=ctx.deployment,
            route_reason=ctx.route_reason,
            stream=ctx.stream,
            prompt_tokens=ctx.prompt_tokens,
            completion_tokens=ctx.completion_tokens,
            finish_reason=ctx.finish_reason,
            ttft_ms=ctx.ttft_ms(),
        )
    if ctx.error_type:
        fields["error_type"] = ctx.error_type
    _log.info("request", extra=fields)
