"""Active health checks: every deployment's provider is probed every interval.

Probes feed the deployment's circuit breaker:
- a failed probe (``check_health`` false, an error, or no answer within the timeout)
  counts as one failure while the circuit is closed, so a dead deployment that gets no
  traffic still opens its circuit after ``failure_threshold`` probes;
- a passing probe moves an open circuit to half-open at once, so the next request is
  the trial instead of waiting out ``reset_after_s``. It never closes the circuit by
  itself: an upstream can list its models and still fail every completion.

Failed probes never keep a circuit open: once it is open, the time-based trial request
decides. Otherwise an upstream whose health endpoint is missing or broken, but which
serves completions fine, could never come back after one outage. Likewise requests and
probes share the breaker, so real successes keep such an upstream closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from airlock.routing.breaker import BreakerState
from airlock.routing.table import Deployment, ModelTable

__all__ = ["DeploymentHealth", "HealthChecker"]

_log = logging.getLogger("airlock.health")


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """One deployment's health, for metrics and ``/health`` (metadata only)."""

    deployment: str
    model: str
    # The last probe passed (True before the first probe: the deployment started).
    healthy: bool
    breaker: BreakerState
    # Unix time of the last finished probe; None before the first.
    last_check_at: float | None
    consecutive_failures: int
    last_latency_s: float | None


@dataclass(slots=True)
class _Record:
    healthy: bool = True
    last_check_at: float | None = None
    consecutive_failures: int = 0
    last_latency_s: float | None = None


class HealthChecker:
    """Probe ``table``'s deployments every ``interval_s`` in the background.

    ``start`` and ``aclose`` must be called from the same task (the app lifespan):
    the probes run in a task group that ``start`` opens and ``aclose`` closes.
    """

    def __init__(
        self,
        table: ModelTable,
        interval_s: float,
        *,
        timeout_s: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._table = table
        self._interval = interval_s
        # A probe must finish before the next one is due.
        self._timeout = min(timeout_s or 5.0, interval_s)
        self._wall_clock = wall_clock
        self._records: dict[str, _Record] = {d.id: _Record() for d in table.deployments()}
        self._tg: TaskGroup | None = None

    @property
    def interval_s(self) -> float:
        return self._interval

    async def start(self) -> None:
        """Probe once at once, then every interval, until ``aclose``."""
        if self._tg is not None:
            raise RuntimeError("HealthChecker already started")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._run)

    async def aclose(self) -> None:
        tg, self._tg = self._tg, None
        if tg is None:
            return
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)

    async def _run(self) -> None:
        while True:
            started = anyio.current_time()
            await self.check_once()
            await anyio.sleep(max(0.0, self._interval - (anyio.current_time() - started)))

    async def check_once(self) -> list[DeploymentHealth]:
        """Probe every deployment concurrently (a hung one does not delay the others)."""
        async with anyio.create_task_group() as tg:
            for dep in self._table.deployments():
                tg.start_soon(self._check, dep)
        return self.snapshot()

    async def _check(self, dep: Deployment) -> None:
        began = anyio.current_time()
        passed = False
        with anyio.move_on_after(self._timeout):
            try:
                passed = await dep.provider.check_health()
            except Exception as exc:  # noqa: BLE001 - a probe that raises is a failed probe
                # Only the type: a message could quote anything the upstream sent.
                _log.warning(
                    "health_check_error",
                    extra={"deployment": dep.id, "exc_type": type(exc).__name__},
                )
        record = self._records.setdefault(dep.id, _Record())
        record.last_latency_s = round(anyio.current_time() - began, 4)
        record.last_check_at = self._wall_clock()
        if passed:
            if not record.healthy:
                _log.info("deployment_healthy", extra={"deployment": dep.id})
            record.healthy = True
            record.consecutive_failures = 0
            dep.breaker.record_probe_success()
            return
        if record.healthy:
            _log.warning("deployment_unhealthy", extra={"deployment": dep.id})
        record.healthy = False
        record.consecutive_failures += 1
        if dep.breaker.state == "closed":
            dep.breaker.record_failure()

    def snapshot(self) -> list[DeploymentHealth]:
        """Every deployment's state now, in table order."""
        out: list[DeploymentHealth] = []
        for dep in self._table.deployments():
            rec = self._records.get(dep.id) or _Record()
            out.append(
                DeploymentHealth(
                    deployment=dep.id,
                    model=dep.model.name,
                    healthy=rec.healthy,
                    breaker=dep.breaker.state,
                    last_check_at=rec.last_check_at,
                    consecutive_failures=rec.consecutive_failures,
                    last_latency_s=rec.last_latency_s,
                )
            )
        return out
