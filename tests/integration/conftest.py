"""Fixtures for the vLLM integration tier: real vLLM servers on loopback.

- ``vllm_server``: one running vLLM (SmolLM2-135M, converted by scripts/setup-vllm.sh),
  started once per session by the airlock launcher; every request of the fixture makes
  sure it is ready again (a test may have killed it).
- ``vllm_replicas``: two running vLLM servers of the same model (the first is
  ``vllm_server``'s process) for load-balancing and failover tests.

Each yields :class:`VllmServer` with ``base_url`` (``http://127.0.0.1:PORT/v1``),
``api_key``, ``model`` (the served name) and ``handle`` (a
:class:`~airlock.deploy.launcher_thread.BackgroundVllm`: ``pid``, ``restarts``,
``wait_ready``).

Missing vLLM setup skips these tests with the reason, except when ``CI`` is set: then the
tier must not be skipped silently, so it fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock.deploy.launcher import (
    SupervisorPolicy,
    VllmChildSpec,
    VllmState,
    spec_env_for_cpu,
)
from airlock.deploy.launcher_thread import BackgroundVllm
from airlock.deploy.vllm_env import (
    VllmEnv,
    VllmSetupError,
    find_model_dir,
    find_vllm_env,
    static_model_dir,
)

__all__ = ["VllmServer", "require_vllm_setup"]

SERVED_MODEL = "smollm2-135m-instruct"
READY_TIMEOUT = 900.0  # a cold start on 2 shared cores takes ~2-3 minutes; leave headroom
# Small engine settings: SmolLM2 on CPU with a 1 GiB KV cache. Eager mode: torch.compile
# makes every start (and restart) ~90 s longer on this CPU (measured: healthy after 55 s
# eager vs 145 s compiled; vLLM 0.32's AOT compile cache fails to reload and compiles
# again) for ~20 % more decode speed (16 vs 20 tokens/s under load), which no test needs.
ENGINE_ARGS = (
    "--max-model-len",
    "2048",
    "--max-num-seqs",
    "16",
    "--dtype",
    "bfloat16",
    "--enforce-eager",
)


@dataclass(frozen=True)
class VllmServer:
    base_url: str
    api_key: str
    model: str
    handle: BackgroundVllm
    log_path: Path


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_vllm_setup() -> tuple[VllmEnv, Path]:
    """The vLLM venv and model dir.

    Skips (with the reason) only when the venv is absent and ``CI`` is not set; under CI,
    or when the venv exists but the setup is incomplete (no converted model), it fails.
    """
    try:
        env = find_vllm_env()
    except VllmSetupError as exc:
        if _ci():
            pytest.fail(f"vLLM tier required under CI: {exc.message}")
        pytest.skip(f"vLLM tier not set up: {exc.message}")
    try:
        return env, find_model_dir()
    except VllmSetupError as exc:
        pytest.fail(f"vLLM venv present but setup incomplete: {exc.message}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(
    tmp_root: Path, env: VllmEnv, model_dir: Path, name: str, cpu: str
) -> tuple[BackgroundVllm, str, Path]:
    api_key = secrets.token_urlsafe(16)
    log_path = tmp_root / f"{name}.log"
    spec = VllmChildSpec(
        model=static_model_dir(model_dir),
        port=_free_port(),
        log_path=log_path,
        served_model_name=SERVED_MODEL,
        engine_args=ENGINE_ARGS,
        api_key=api_key,
        # One core each: replicas do not fight over the same core, and the other core
        # stays for the tests themselves.
        env=spec_env_for_cpu(kvcache_gb=1, threads_bind=cpu),
    )
    policy = SupervisorPolicy(health_timeout=READY_TIMEOUT, backoff_initial=0.5, drain_timeout=10)
    handle = BackgroundVllm(spec, policy, env=env)
    return handle, api_key, log_path


def _start_all(handles: list[BackgroundVllm]) -> None:
    # vLLM's start is mostly waiting on the child; start replicas side by side.
    errors: list[BaseException] = []

    def run(handle: BackgroundVllm) -> None:
        try:
            handle.start()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other starts
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for handle in handles:
            handle.stop(drain=False)
        raise errors[0]


class _PoolFactory:
    def __init__(self, root: Path, env: VllmEnv, model_dir: Path, pool: dict[str, VllmServer]):
        self.root, self.env, self.model_dir, self.pool = root, env, model_dir, pool

    def ensure(self, names: tuple[str, ...]) -> list[VllmServer]:
        cpus = {"primary": "0", "secondary": "1"}
        for name in names:
            # A test may have stopped a server for good (drain tests): start a new one.
            if name in self.pool and self.pool[name].handle.state is VllmState.STOPPED:
                self.pool.pop(name).handle.stop()
        missing = [n for n in names if n not in self.pool]
        launched = [(n, *_launch(self.root, self.env, self.model_dir, n, cpus[n])) for n in missing]
        _start_all([handle for _, handle, _, _ in launched])
        for name, handle, key, log_path in launched:
            self.pool[name] = VllmServer(handle.base_url, key, SERVED_MODEL, handle, log_path)
        servers = [self.pool[n] for n in names]
        for server in servers:
            server.handle.wait_ready(READY_TIMEOUT)
        return servers


@pytest.fixture(scope="session")
def _vllm_factory() -> Iterator[_PoolFactory]:
    env, model_dir = require_vllm_setup()
    pool: dict[str, VllmServer] = {}
    # Not pytest's tmp_path: other pytest runs on this machine prune old basetemp dirs,
    # which would unlink the logs of servers that live for the whole session.
    root = Path(tempfile.mkdtemp(prefix="airlock-vllm-"))
    factory = _PoolFactory(root, env, model_dir, pool)
    try:
        yield factory
    finally:
        for server in pool.values():
            server.handle.stop(drain=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def vllm_server(_vllm_factory: _PoolFactory) -> VllmServer:
    """A ready vLLM server (started once per session, made ready again on each use)."""
    return _vllm_factory.ensure(("primary",))[0]


@pytest.fixture
def vllm_replicas(_vllm_factory: _PoolFactory) -> tuple[VllmServer, VllmServer]:
    """Two ready vLLM replicas of the same model (the first is ``vllm_server``'s)."""
    first, second = _vllm_factory.ensure(("primary", "secondary"))
    return first, second
