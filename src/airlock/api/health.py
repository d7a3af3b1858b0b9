"""``GET /health``: unauthenticated readiness, from the active health checker's last probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.responses import json_response
from airlock.routing.health import HealthChecker

__all__ = ["health"]


async def health(request: Request) -> Response:
    # The app routes requests only after the lifespan loaded every deployment, so
    # reaching this handler means the gateway is ready. It never probes upstreams
    # itself: a hanging upstream must not make the gateway's own liveness probe hang.
    checker: HealthChecker = request.app.state.health
    snapshot = checker.snapshot()
    deployments = {h.deployment: h.healthy and h.breaker != "open" for h in snapshot}
    status = "ok" if all(deployments.values()) else "degraded"
    return json_response({"status": status, "deployments": deployments})
