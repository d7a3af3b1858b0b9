"""The launcher's value types: what to run, how to supervise it, what it reports.

Re-exported by :mod:`airlock.deploy.launcher`; import them from there.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from airlock.deploy.vllm_env import ModelDirSource
from airlock.errors import ServiceUnavailableError

__all__ = [
    "EventSink",
    "LaunchEvent",
    "SupervisorPolicy",
    "VllmChildSpec",
    "VllmLaunchError",
    "VllmState",
    "spec_env_for_cpu",
]


class VllmLaunchError(ServiceUnavailableError):
    """The vLLM child could not be started or kept running (metadata-only message)."""

    default_code = "vllm_launch_failed"


class VllmState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    DRAINING = "draining"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class VllmChildSpec:
    """What to run. ``engine_args`` are the planner's flags (or its full command line)."""

    model: ModelDirSource
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    served_model_name: str = "smollm2-135m-instruct"
    engine_args: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    #: Extra child environment, e.g. ``VLLM_CPU_KVCACHE_SPACE`` or ``VLLM_CPU_OMP_THREADS_BIND``.
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """Timing of health checks, restarts and shutdown (seconds)."""

    health_timeout: float = 900.0
    health_interval: float = 1.0
    probe_interval: float = 5.0
    probe_failures: int = 3
    backoff_initial: float = 1.0
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    stable_after: float = 120.0
    max_restarts: int | None = None
    drain_timeout: float = 30.0
    stop_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.backoff_initial <= 0 or self.backoff_factor < 1 or self.backoff_max <= 0:
            raise ValueError("backoff must be positive and non-decreasing")
        if self.health_timeout <= 0 or self.health_interval <= 0 or self.probe_interval <= 0:
            raise ValueError("health timings must be positive")
        if self.probe_failures < 1:
            raise ValueError("probe_failures must be at least 1")
        if self.max_restarts is not None and self.max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")


@dataclass(frozen=True, slots=True)
class LaunchEvent:
    """Progress and lifecycle notifications (for displays and logs; metadata only)."""

    #: spawned | waiting | ready | exited | unhealthy | backoff | failed | draining | stopped
    kind: str
    attempt: int
    elapsed: float
    pid: int | None = None
    exit_code: int | None = None
    delay: float | None = None
    in_flight: int | None = None


EventSink = Callable[[LaunchEvent], None]


def spec_env_for_cpu(
    *, kvcache_gb: int | None = None, threads_bind: str | None = None
) -> dict[str, str]:
    """Child environment for vLLM's CPU backend (KV cache size, OpenMP core binding)."""
    env: dict[str, str] = {}
    if kvcache_gb is not None:
        if kvcache_gb < 1:
            raise ValueError("kvcache_gb must be >= 1")
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kvcache_gb)
    if threads_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = threads_bind
    return env
