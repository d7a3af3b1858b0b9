"""Start, watch, restart, drain and stop vLLM's OpenAI server as a child process.

:class:`VllmProcess` runs ``python -m vllm.entrypoints.openai.api_server`` from the vLLM
venv with the planner's engine flags plus the launcher-owned ones (see
:mod:`airlock.deploy.launcher_flags`), in a process group of its own (vLLM forks an
engine-core and a worker process; a crash of the API server must not leave them
running). Its stdout/stderr go to a log file; request content never reaches it because
content logging is off and cannot be switched on through the launcher.

Lifecycle: :meth:`VllmProcess.start` returns once ``/health`` answers 200 (or raises
:class:`VllmLaunchError` with the exit code and the log path). A supervisor task then
watches the child: if it exits, or ``/health`` fails several times in a row, the process
group is killed and relaunched after an exponential backoff (reset once a child has
stayed up for ``stable_after`` seconds). :meth:`VllmProcess.stop` drains first — the
process reports ``accepting = False`` so the gateway stops routing to it, then waits
until vLLM's own ``/metrics`` show no running or waiting request — and then sends
SIGTERM, and SIGKILL after a grace period.

The model directory comes from a :data:`~airlock.deploy.vllm_env.ModelDirSource`: it is
entered before the first launch and exited after the last stop, so sealed weights can
be decrypted into a memory-backed directory that lives exactly as long as the child.

The value types (:mod:`._launcher_types`) and the OS helpers (:mod:`._launcher_os`)
live in private modules; import the public names from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

# Under its old private name too: tests import it from here to run in a subprocess.
from airlock.deploy._launcher_os import die_with_parent as _die_with_parent
from airlock.deploy._launcher_os import (
    host_for_url,
    port_is_free,
    signal_group,
    wait_group_gone,
)
from airlock.deploy._launcher_types import (
    EventSink,
    LaunchEvent,
    SupervisorPolicy,
    VllmChildSpec,
    VllmLaunchError,
    VllmState,
    spec_env_for_cpu,
)
from airlock.deploy.launcher_flags import VllmCommand, build_command
from airlock.deploy.launcher_metrics import in_flight_from_metrics
from airlock.deploy.vllm_env import VllmEnv, find_vllm_env

__all__ = [
    "EventSink",
    "LaunchEvent",
    "SupervisorPolicy",
    "VllmChildSpec",
    "VllmLaunchError",
    "VllmProcess",
    "VllmState",
    "spec_env_for_cpu",
]


class _ChildExited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"exit code {code}")
        self.code = code


class VllmProcess:
    """One supervised vLLM server. Use ``async with`` or :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        spec: VllmChildSpec,
        policy: SupervisorPolicy | None = None,
        *,
        env: VllmEnv | None = None,
        on_event: EventSink | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._spec = spec
        self._policy = policy or SupervisorPolicy()
        self._env = env
        self._on_event = on_event
        # The gateway's own count of requests it has sent here (optional; vLLM's metrics
        # are always consulted as well).
        self._external_in_flight = in_flight
        self._state = VllmState.STOPPED
        self._proc: asyncio.subprocess.Process | None = None
        self._exit_stack = contextlib.ExitStack()
        self._command: VllmCommand | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._attempt = 0
        self._restarts = 0
        self._ready_at: float | None = None
        self._backoff = self._policy.backoff_initial

    # -- what the gateway reads ------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{host_for_url(self._spec.host)}:{self._spec.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to register as an upstream (``.../v1``)."""
        return f"{self.root_url}/v1"

    @property
    def served_model_name(self) -> str:
        return self._spec.served_model_name

    @property
    def state(self) -> VllmState:
        return self._state

    @property
    def accepting(self) -> bool:
        """True while new requests may be sent (ready and not draining)."""
        return self._state is VllmState.READY

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def log_path(self) -> Path:
        return self._spec.log_path

    @property
    def command(self) -> VllmCommand | None:
        """The argv/env of the current child (None before the first launch)."""
        return self._command

    async def wait_ready(self) -> None:
        """Wait until the server is (again) ready; raises once it has failed or stopped.

        Bound the wait with ``asyncio.timeout``.
        """
        while not self._ready.is_set():
            if self._state in (VllmState.FAILED, VllmState.STOPPED):
                raise VllmLaunchError(f"vLLM is {self._state.value}; see {self.log_path}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), 1.0)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> VllmProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Launch the child and return once it is healthy; then supervise it."""
        if self._state is not VllmState.STOPPED:
            raise VllmLaunchError(f"vLLM launcher is already {self._state.value}")
        env = self._env or find_vllm_env()
        self._stopping.clear()
        self._spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._state = VllmState.STARTING
        try:
            model_dir = self._exit_stack.enter_context(self._spec.model())
            self._command = build_command(
                python=env.python,
                model_dir=model_dir,
                host=self._spec.host,
                port=self._spec.port,
                served_model_name=self._spec.served_model_name,
                engine_args=self._spec.engine_args,
                api_key=self._spec.api_key,
                extra_env=self._spec.env,
            )
            await self._launch_once()
        except BaseException:
            await self._kill_group()
            self._exit_stack.close()
            self._state = VllmState.STOPPED
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="vllm-supervisor")

    async def stop(self, *, drain: bool = True) -> None:
        """Drain (optional), then SIGTERM the process group, SIGKILL after a grace period."""
        if self._state is VllmState.STOPPED:
            return
        self._stopping.set()
        self._ready.clear()
        if drain and self._state is VllmState.READY:
            self._state = VllmState.DRAINING
            await self._drain()
        self._state = VllmState.DRAINING
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self._terminate()
        self._exit_stack.close()
        self._state = VllmState.STOPPED
        self._emit("stopped")

    # -- internals -------------------------------------------------------------------------

    def _emit(
        self,
        kind: str,
        *,
        elapsed: float = 0.0,
        exit_code: int | None = None,
        delay: float | None = None,
        in_flight: int | None = None,
    ) -> None:
        if self._on_event is None:
            return
        self._on_event(
            LaunchEvent(
                kind=kind,
                attempt=self._attempt,
                elapsed=elapsed,
                pid=self.pid,
                exit_code=exit_code,
                delay=delay,
                in_flight=in_flight,
            )
        )

    async def _spawn(self) -> asyncio.subprocess.Process:
        assert self._command is not None
        if not port_is_free(self._spec.host, self._spec.port):
            raise VllmLaunchError(f"port {self._spec.port} on {self._spec.host} is already in use")
        self._attempt += 1
        try:
            self._spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self._spec.log_path.open("ab") as log:
                log.write(
                    f"[airlock] launching vLLM, attempt {self._attempt}, "
                    f"port {self._spec.port}\n".encode()
                )
                log.flush()
                proc = await asyncio.create_subprocess_exec(
                    *self._command.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=dict(self._command.env),
                    # Own process group: vLLM's engine-core and worker processes die with it.
                    start_new_session=True,
                    # And the group's leader dies with us, even if we are SIGKILLed.
                    preexec_fn=_die_with_parent,
                )
        except OSError as exc:
            # A restart must not kill the supervisor task: report it as a failed launch.
            raise VllmLaunchError(
                f"could not start vLLM ({type(exc).__name__}, errno {exc.errno}); "
                f"log {self._spec.log_path}"
            ) from exc
        self._proc = proc
        self._emit("spawned")
        return proc

    async def _launch_once(self) -> None:
        proc = await self._spawn()
        started = time.monotonic()
        try:
            await self._wait_healthy(proc, started)
        except _ChildExited as exc:
            raise VllmLaunchError(
                f"vLLM exited with code {exc.code} before becoming healthy; "
                f"see {self._spec.log_path}"
            ) from None
        self._ready_at = time.monotonic()
        self._state = VllmState.READY
        self._ready.set()
        self._emit("ready", elapsed=self._ready_at - started)

    async def _wait_healthy(self, proc: asyncio.subprocess.Process, started: float) -> None:
        deadline = started + self._policy.health_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if proc.returncode is not None:
                    raise _ChildExited(proc.returncode)
                if await self._probe(client):
                    return
                now = time.monotonic()
                if now >= deadline:
                    await self._kill_group()
                    raise VllmLaunchError(
                        f"vLLM not healthy within {self._policy.health_timeout:.0f}s; "
                        f"see {self._spec.log_path}"
                    )
                self._emit("waiting", elapsed=now - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), self._policy.health_interval)

    async def _probe(self, client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get(f"{self.root_url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _supervise(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            code = await self._watch(proc)
            if self._stopping.is_set():
                return
            self._ready.clear()
            self._state = VllmState.RESTARTING
            await self._kill_group()
            self._emit("exited", exit_code=code)
            if not await self._relaunch():
                return

    async def _watch(self, proc: asyncio.subprocess.Process) -> int | None:
        """Return when the child exits (its code) or stops answering (None, after a kill)."""
        failures = 0
        async with httpx.AsyncClient(timeout=self._policy.probe_interval) as client:
            while True:
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(proc.wait(), self._policy.probe_interval)
                if self._stopping.is_set():
                    return None
                failures = 0 if await self._probe(client) else failures + 1
                if failures >= self._policy.probe_failures:
                    self._emit("unhealthy")
                    return None

    async def _relaunch(self) -> bool:
        """Restart with backoff until healthy; False when giving up or stopping."""
        policy = self._policy
        if self._ready_at is not None and time.monotonic() - self._ready_at >= policy.stable_after:
            self._backoff = policy.backoff_initial
        while True:
            if policy.max_restarts is not None and self._restarts >= policy.max_restarts:
                self._state = VllmState.FAILED
                self._emit("failed")
                return False
            delay, self._backoff = (
                self._backoff,
                min(self._backoff * policy.backoff_factor, policy.backoff_max),
            )
            self._emit("backoff", delay=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return False
            self._restarts += 1
            try:
                await self._launch_once()
            except VllmLaunchError:
                await self._kill_group()
                self._state = VllmState.RESTARTING
                continue
            return True

    async def _drain(self) -> None:
        """Wait until no request is in flight in vLLM (and in the gateway), up to a limit."""
        deadline = time.monotonic() + self._policy.drain_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                count = await self._in_flight(client)
                self._emit("draining", in_flight=count)
                if count == 0 or time.monotonic() >= deadline:
                    return
                await asyncio.sleep(0.25)

    async def _in_flight(self, client: httpx.AsyncClient) -> int:
        external = self._external_in_flight() if self._external_in_flight else 0
        try:
            response = await client.get(f"{self.root_url}/metrics")
        except httpx.HTTPError:
            return external  # no server, nothing in flight there
        if response.status_code != 200:
            return external
        return external + in_flight_from_metrics(response.text)

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            await self._kill_group()
            return
        signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), self._policy.stop_timeout)
        await self._kill_group()

    async def _kill_group(self) -> None:
        """SIGKILL whatever is left of the child's process group and wait until it is gone.

        Waiting matters: a relaunch needs the port and the memory the old engine-core and
        worker processes hold, and SIGKILL only takes effect once they are scheduled.
        """
        proc = self._proc
        if proc is None:
            return
        signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        await wait_group_gone(proc.pid)
