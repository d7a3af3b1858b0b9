"""``GET /metrics``: the Prometheus scrape endpoint.

Admin-only by default. The labels hold no content, but the series still describe the
organisation: which models and deployments exist, traffic and spend per model, and how
often requests carry each kind of sensitive data (``sensitive_requests_total``). That
is for operators, so a scraper presents an admin key (Prometheus: ``authorization:
{credentials_file: …}``). Operators who scrape over a private network may instead
build ``Metrics(..., allow_anonymous_scrape=True)`` from their config.

Breaker state and in-flight counts are read from the deployments at scrape time: a
breaker moves from open to half-open by the clock alone, so a gauge set only on
transitions would go stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from airlock.access.principal import Principal
from airlock.errors import PermissionDeniedError, ServiceUnavailableError
from airlock.metrics import Metrics

__all__ = ["MetricsHost", "metrics"]


class _Breaker(Protocol):
    @property
    def state(self) -> str: ...


class _Deployment(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def breaker(self) -> _Breaker: ...


class _Table(Protocol):
    def deployments(self) -> Iterable[_Deployment]: ...


class MetricsHost(Protocol):
    """What this handler needs of ``app.state.gateway`` (``api.gateway.Gateway``)."""

    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def table(self) -> _Table: ...
    async def authenticate(self, request: Request) -> Principal: ...


def _host(request: Request) -> MetricsHost:
    host: MetricsHost = request.app.state.gateway
    return host


async def metrics(request: Request) -> Response:
    gw = _host(request)
    m = gw.metrics
    if m is None or not m.allow_anonymous_scrape:
        principal = await gw.authenticate(request)  # 401 without a valid key
        if not principal.is_admin:
            raise PermissionDeniedError("Reading /metrics requires an admin API key.")
    if m is None:
        raise ServiceUnavailableError("Metrics are not enabled on this gateway.")
    for dep in gw.table.deployments():
        m.set_breaker(dep.id, dep.breaker.state)
        m.set_in_flight(dep.id, dep.in_flight)
    body, content_type = m.render(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers={"cache-control": "no-store"})
