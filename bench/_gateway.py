"""Shared helpers for the HTTP benchmarks: run ``airlock serve`` (or any server) as a subprocess.

Modelled on ``tests/support/server.py``, which bench scripts cannot import when they are run
as ``.venv/bin/python bench/NAME.py`` (only ``bench/`` is on ``sys.path`` then).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "AIRLOCK",
    "BENCH_DIR",
    "MASTER_KEY",
    "SchedMonitor",
    "ServerProcess",
    "cpu_seconds",
    "free_port",
    "listens",
    "median",
    "start_gateway",
    "start_server",
]

BENCH_DIR = Path(__file__).resolve().parent
AIRLOCK = Path(sys.executable).with_name("airlock")
MASTER_KEY = "sk-airlock-bench-master-key"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def listens(pid: int, port: int) -> bool:
    """Whether ``pid`` owns the socket listening on 127.0.0.1:``port`` (Linux /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


class SchedMonitor:
    """Per-thread on-CPU and run-queue wait time of a process over a window (Linux schedstat).

    Run-queue wait is time a thread was ready but had no CPU: on a shared machine, mostly
    other processes' doing. Threads that end inside the window (thread pools) are polled
    every ``interval`` seconds, so at most that much of their last stretch is missed.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self._pid = pid
        self._interval = interval
        self._start: dict[int, tuple[int, int]] = {}
        self._last: dict[int, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="sched-monitor", daemon=True)
        self._own_tid = 0

    def _read(self) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for task in Path(f"/proc/{self._pid}/task").iterdir():
            try:
                run, wait, _ = task.joinpath("schedstat").read_text(encoding="ascii").split()
            except (OSError, ValueError):
                continue  # the thread ended meanwhile
            out[int(task.name)] = (int(run), int(wait))
        return out

    def _poll(self) -> None:
        self._own_tid = threading.get_native_id()
        while not self._stop.wait(self._interval):
            self._last.update(self._read())

    def __enter__(self) -> SchedMonitor:
        self._start = self._read()
        self._last = dict(self._start)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(self._read())

    def deltas(self) -> dict[int, tuple[float, float]]:
        """tid -> (on-CPU seconds, run-queue wait seconds) within the window."""
        out = {}
        for tid, (run, wait) in self._last.items():
            if tid == self._own_tid:
                continue
            run0, wait0 = self._start.get(tid, (0, 0))
            out[tid] = ((run - run0) / 1e9, (wait - wait0) / 1e9)
        return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@dataclass
class ServerProcess:
    name: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_server(
    name: str,
    cmd: list[str],
    *,
    port: int,
    workdir: Path,
    health_path: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120,
) -> ServerProcess:
    """Start ``cmd`` (which must listen on ``port``) and wait until ``health_path`` is 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = ServerProcess(name, port, log_path, proc)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
        # Other processes on this machine pick free ports too: only a listener owned by
        # our process counts (uvicorn binds after its lifespan startup, seconds later).
        if listens(proc.pid, port):
            try:
                if httpx.get(server.base_url + health_path, timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} not ready after {ready_timeout}s:\n{server.log_tail()}")


def start_gateway(
    workdir: Path,
    *,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    log_level: str = "info",
    ready_timeout: float = 180,
) -> ServerProcess:
    """The real ``airlock serve`` on a free loopback port, with its own ``AIRLOCK_HOME``."""
    port = free_port()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    run_env["AIRLOCK_HOME"] = str(workdir / "home")
    run_env["AIRLOCK_MASTER_KEY"] = MASTER_KEY
    run_env.update(env or {})
    cmd = [str(AIRLOCK), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", log_level]
    if config is not None:
        cmd += ["--config", str(config)]
    return start_server(
        "airlock",
        cmd,
        port=port,
        workdir=workdir,
        health_path="/health",
        env=run_env,
        ready_timeout=ready_timeout,
    )
