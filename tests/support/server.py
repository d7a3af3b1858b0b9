"""Run the real ``airlock serve`` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
AIRLOCK = Path(sys.executable).with_name("airlock")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProcess:
    home: Path
    port: int
    master_key: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_gateway(
    home: Path,
    *,
    config: Path | None = None,
    master_key: str | None = "sk-airlock-test-master-key",
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    ready_timeout: float = 120,
) -> GatewayProcess:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = home.parent / f"gateway-{port}.log"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    run_env["AIRLOCK_HOME"] = str(home)
    if master_key is not None:
        run_env["AIRLOCK_MASTER_KEY"] = master_key
    run_env.update(env or {})
    cmd = [str(AIRLOCK), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += args or []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=run_env, cwd=home)
    gw = GatewayProcess(home, port, master_key or "", log_path, proc, run_env)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gw.log_text()}")
        try:
            if httpx.get(gw.base_url + "/health", timeout=2).status_code == 200:
                return gw
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    gw.stop(signal.SIGKILL)
    raise RuntimeError(f"gateway not ready after {ready_timeout}s:\n{gw.log_text()}")
