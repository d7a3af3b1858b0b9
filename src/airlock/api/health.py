"""``GET /health``: unauthenticated readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.responses import json_response

__all__ = ["health"]


async def health(request: Request) -> Response:
    # The app only routes requests after the lifespan finished loading every
    # deployment, so reaching this handler means the gateway is ready.
    gw = request.app.state.gateway
    deployments = {d.id: await d.provider.check_health() for d in gw.table.deployments()}
    status = "ok" if all(deployments.values()) else "degraded"
    return json_response({"status": status, "deployments": deployments})
