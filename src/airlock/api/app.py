"""The ASGI application: routes, middleware, and the lifespan that builds the gateway."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airlock.access.master_key import ensure_master_key
from airlock.api.admin import admin_routes
from airlock.api.chat import chat_completions
from airlock.api.completions import completions
from airlock.api.context import RequestContext
from airlock.api.embeddings import embeddings
from airlock.api.gateway import Gateway
from airlock.api.health import health
from airlock.api.metrics import metrics as metrics_page
from airlock.api.middleware import RequestContextMiddleware
from airlock.api.models import get_model, list_models
from airlock.api.responses import error_response
from airlock.api.services import open_services, price_catalog
from airlock.config import Settings
from airlock.errors import AirlockError, BadRequestError, MethodNotAllowedError, NotFoundError
from airlock.ledger import error_type_of
from airlock.metrics import Metrics
from airlock.providers.registry import ProviderRegistry, builtin_registry
from airlock.providers.resources import Resources
from airlock.routing.breaker import BreakerSettings, CircuitBreaker
from airlock.routing.health import HealthChecker
from airlock.routing.router import Router
from airlock.routing.table import ModelTable

__all__ = ["create_app"]

_log = logging.getLogger("airlock.app")


async def _airlock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AirlockError)
    ctx: RequestContext | None = request.scope.get("state", {}).get("ctx")
    if ctx is not None and ctx.error_type is None:
        ctx.error_type = error_type_of(exc)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: AirlockError = NotFoundError(
            f"Unknown request URL: {request.method} {request.url.path}. "
            "Please check the URL for typos.",
            code="unknown_url",
        )
    elif exc.status_code == 405:
        err = MethodNotAllowedError(
            f"Method {request.method} is not allowed for {request.url.path}."
        )
    else:
        err = BadRequestError(str(exc.detail))
    return error_response(err)


def create_app(settings: Settings, registry: ProviderRegistry | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        home = settings.home
        home.mkdir(parents=True, exist_ok=True)
        master = ensure_master_key(home, settings.env.master_key)
        if master.created:
            # Printed once for the operator; only its hash is stored.
            print(
                f"airlock: created the master API key (shown only now): {master.created}",
                flush=True,
            )
        async with AsyncExitStack() as stack:
            resources = Resources(home)
            stack.push_async_callback(resources.aclose)
            table = ModelTable.build(settings.app, registry or builtin_registry(), resources)
            metrics = Metrics(
                [e.name for e in table.all()],
                [d.id for d in table.deployments()],
                prices=price_catalog(settings)[0],
                allow_anonymous_scrape=settings.app.server.metrics_anonymous,
            )
            services = await stack.enter_async_context(
                open_services(settings, master.digest, observers=(metrics.observe_request,))
            )
            await table.start()
            stack.push_async_callback(table.aclose)
            routing = settings.app.routing
            for dep in table.deployments():
                dep.breaker = CircuitBreaker(
                    BreakerSettings(
                        routing.breaker.failure_threshold, routing.breaker.reset_after_s
                    )
                )
            health = HealthChecker(table, routing.health_check_interval_s)
            await health.start()
            stack.push_async_callback(health.aclose)
            app.state.health = health
            app.state.gateway = Gateway(
                settings=settings,
                table=table,
                router=Router(table, routing, scorer=services.scorer, privacy=settings.app.privacy),
                services=services,
                metrics=metrics,
                started_at=int(time.time()),
            )
            _log.info("ready", extra={"models": [e.name for e in table.all()]})
            try:
                yield
            finally:
                # Requests the server cancelled at its grace timeout are metered only
                # now: wait for them before the ledger closes.
                with anyio.move_on_after(15) as waited:
                    await services.meter.drain()
                if waited.cancelled_caught:
                    _log.error("meter_drain_timeout", extra={"unmetered": services.meter.unmetered})
        # Closed in reverse: models first, then the ledger flushes every queued record.
        _log.info("stopped")

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        *admin_routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers={AirlockError: _airlock_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
