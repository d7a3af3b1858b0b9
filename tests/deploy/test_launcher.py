"""The launcher's supervision logic against a stand-in vLLM (a real child process + HTTP server).

The stand-in (tests/integration/fake_vllm.py) runs as vLLM's api_server module from a
throw-away venv, so the launcher's real code path is exercised; ``FAKE_*`` variables in
the launch spec steer it. The real-vLLM version of these tests is
tests/integration/test_vllm_launcher_recovery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from airlock.deploy.launcher import (
    LaunchEvent,
    SupervisorPolicy,
    VllmChildSpec,
    VllmLaunchError,
    VllmProcess,
    VllmState,
)
from airlock.deploy.launcher_thread import BackgroundVllm
from airlock.deploy.vllm_env import VllmEnv, static_model_dir
from tests.integration.fake_vllm import make_fake_vllm_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fake_env(tmp_path: Path) -> VllmEnv:
    return make_fake_vllm_env(tmp_path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.events: list[LaunchEvent] = []

    def __call__(self, event: LaunchEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events if e.kind != "waiting"]


class Harness:
    def __init__(self, tmp_path: Path, env: VllmEnv) -> None:
        self.state = tmp_path / "state"
        self.state.mkdir()
        self.model = tmp_path / "model"
        self.model.mkdir()
        self.log = tmp_path / "logs" / "vllm.log"
        self.env = env
        self.port = _free_port()
        self.events = Recorder()
        self.source_log: list[str] = []

    def source(self) -> contextlib.AbstractContextManager[Path]:
        @contextlib.contextmanager
        def enter() -> Iterator[Path]:
            self.source_log.append("enter")
            yield self.model
            self.source_log.append("exit")

        return enter()

    def spec(self, **env: str) -> VllmChildSpec:
        return VllmChildSpec(
            model=self.source,
            port=self.port,
            log_path=self.log,
            served_model_name="tiny",
            engine_args=("--max-model-len", "512"),
            api_key="k-123",
            env={"FAKE_STATE_DIR": str(self.state), **env},
        )

    def process(self, policy: SupervisorPolicy | None = None, **env: str) -> VllmProcess:
        return VllmProcess(
            self.spec(**env),
            policy or fast_policy(),
            env=self.env,
            on_event=self.events,
        )

    def launched(self, attempt: int) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.state / f"argv-{attempt}.json").read_text())
        return data

    def helper_pid(self, attempt: int) -> int:
        return int((self.state / f"helper-{attempt}").read_text())


def fast_policy(**overrides: float | int | None) -> SupervisorPolicy:
    settings: dict[str, float | int | None] = {
        "health_timeout": 30.0,
        "health_interval": 0.05,
        "probe_interval": 0.1,
        "probe_failures": 2,
        "backoff_initial": 0.05,
        "backoff_factor": 2.0,
        "backoff_max": 0.4,
        "drain_timeout": 5.0,
        "stop_timeout": 5.0,
        **overrides,
    }
    return SupervisorPolicy(**settings)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    # The supervisor notices a SIGKILL asynchronously; poll for the state change.
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def h(tmp_path: Path, fake_env: VllmEnv) -> Harness:
    return Harness(tmp_path, fake_env)


def test_start_serves_with_launcher_flags_and_stop_ends_the_process_group(h: Harness) -> None:
    async def scenario() -> None:
        proc = h.process()
        await proc.start()
        assert proc.state is VllmState.READY
        assert proc.accepting
        assert proc.base_url == f"http://127.0.0.1:{h.port}/v1"
        async with httpx.AsyncClient() as client:
            models = (await client.get(f"{proc.base_url}/models")).json()
        assert models["data"][0]["id"] == "tiny"
        assert h.source_log == ["enter"]
        helper = h.helper_pid(1)
        assert alive(helper)
        await proc.stop()
        assert proc.state is VllmState.STOPPED
        assert not alive(helper)
        assert h.source_log == ["enter", "exit"]

    asyncio.run(scenario())
    launched = h.launched(1)
    argv = launched["argv"]
    assert isinstance(argv, list)
    assert argv[argv.index("--model") + 1] == str(h.model)
    assert argv[argv.index("--port") + 1] == str(h.port)
    assert argv[argv.index("--max-model-len") + 1] == "512"
    assert "--no-enable-log-requests" in argv
    assert "--api-key" not in argv
    assert "k-123" not in argv
    env = launched["env"]
    assert isinstance(env, dict)
    assert env["VLLM_API_KEY"] == "k-123"
    assert env["VLLM_LOGGING_LEVEL"] == "INFO"
    assert env["VLLM_DEBUG_LOG_API_SERVER_RESPONSE"] == "false"
    assert h.events.kinds() == ["spawned", "ready", "draining", "stopped"]
    log = h.log.read_text()
    assert "[airlock] launching vLLM, attempt 1" in log
    assert "fake vllm attempt 1 starting" in log  # the child's stdout lands in the log


def test_child_that_exits_before_ready_fails_start_with_code_and_log_path(h: Harness) -> None:
    async def scenario() -> VllmProcess:
        proc = h.process(FAKE_EXIT_ON_ATTEMPTS="1")
        with pytest.raises(VllmLaunchError, match="exited with code 3") as err:
            await proc.start()
        assert str(h.log) in err.value.message
        return proc

    proc = asyncio.run(scenario())
    assert proc.state is VllmState.STOPPED
    assert h.source_log == ["enter", "exit"]
    assert not alive(h.helper_pid(1))  # its grandchild did not outlive it


def test_health_timeout_kills_the_child(h: Harness) -> None:
    async def scenario() -> None:
        proc = h.process(fast_policy(health_timeout=0.5), FAKE_START_DELAY="30")
        with pytest.raises(VllmLaunchError, match="not healthy within"):
            await proc.start()
        assert proc.state is VllmState.STOPPED

    asyncio.run(scenario())
    assert not alive(h.helper_pid(1))
    assert h.source_log == ["enter", "exit"]


def test_port_in_use_fails_before_spawning(h: Harness) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", h.port))
        busy.listen()

        async def scenario() -> None:
            with pytest.raises(VllmLaunchError, match=f"port {h.port} .* already in use"):
                await h.process().start()

        asyncio.run(scenario())
    assert not (h.state / "attempts").exists()


def test_start_twice_is_refused(h: Harness) -> None:
    async def scenario() -> None:
        async with h.process() as proc:
            with pytest.raises(VllmLaunchError, match="already ready"):
                await proc.start()

    asyncio.run(scenario())


def test_killed_child_is_restarted_and_its_group_reaped(h: Harness) -> None:
    async def scenario() -> None:
        async with h.process() as proc:
            first_pid = proc.pid
            assert first_pid is not None
            os.kill(first_pid, signal.SIGKILL)
            async with asyncio.timeout(30):
                while proc.restarts == 0 or proc.state is not VllmState.READY:
                    await asyncio.sleep(0.05)
            assert proc.pid not in (None, first_pid)
            assert not alive(h.helper_pid(1))  # the old engine-core stand-in is gone
            assert alive(h.helper_pid(2))

    asyncio.run(scenario())
    kinds = h.events.kinds()
    assert kinds[:5] == ["spawned", "ready", "exited", "backoff", "spawned"]
    assert "ready" in kinds[5:]
    exited = next(e for e in h.events.events if e.kind == "exited")
    assert exited.exit_code == -signal.SIGKILL


def test_backoff_doubles_up_to_the_cap_and_max_restarts_gives_up(h: Harness) -> None:
    async def scenario() -> VllmProcess:
        # Attempt 1 runs; every relaunch dies before becoming healthy.
        proc = h.process(fast_policy(max_restarts=4), FAKE_EXIT_ON_ATTEMPTS="2,3,4,5,6,7,8")
        await proc.start()
        first_pid = proc.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            while proc.state is not VllmState.FAILED:
                await asyncio.sleep(0.05)
        assert not proc.accepting
        with pytest.raises(VllmLaunchError, match="failed"):
            await proc.wait_ready()
        await proc.stop()
        return proc

    proc = asyncio.run(scenario())
    delays = [e.delay for e in h.events.events if e.kind == "backoff"]
    assert delays == [0.05, 0.1, 0.2, 0.4]
    assert proc.restarts == 4
    assert h.events.kinds()[-2:] == ["failed", "stopped"]
    assert h.source_log == ["enter", "exit"]


def test_backoff_resets_after_a_stable_run(h: Harness) -> None:
    async def scenario() -> None:
        async with h.process(fast_policy(stable_after=0.0)) as proc:
            for expected_restarts in (1, 2):
                pid = proc.pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                async with asyncio.timeout(30):
                    while proc.restarts < expected_restarts or not proc.accepting:
                        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    delays = [e.delay for e in h.events.events if e.kind == "backoff"]
    assert delays == [0.05, 0.05]


def test_unhealthy_but_running_child_is_killed_and_replaced(h: Harness) -> None:
    async def scenario() -> None:
        # Attempt 1 answers /health 3 times, then 503 forever while still running.
        async with h.process(FAKE_SICK_AFTER="3") as proc:
            first_pid = proc.pid
            assert first_pid is not None
            async with asyncio.timeout(30):
                while proc.restarts == 0 or not proc.accepting:
                    await asyncio.sleep(0.05)
            assert not alive(first_pid)

    asyncio.run(scenario())
    assert "unhealthy" in h.events.kinds()


def test_stop_drains_in_flight_requests_first(h: Harness, tmp_path: Path) -> None:
    in_flight = tmp_path / "in_flight"
    in_flight.write_text("2")

    async def scenario() -> None:
        proc = h.process(FAKE_IN_FLIGHT_FILE=str(in_flight))
        await proc.start()
        helper = h.helper_pid(1)

        async def finish_requests() -> None:
            # The child keeps serving while draining; the requests then complete.
            while proc.state is not VllmState.DRAINING:
                await asyncio.sleep(0.01)
            assert not proc.accepting
            assert alive(helper)
            await asyncio.sleep(0.3)
            in_flight.write_text("0")

        await asyncio.gather(proc.stop(), finish_requests())

    asyncio.run(scenario())
    drained = [e.in_flight for e in h.events.events if e.kind == "draining"]
    assert drained[0] == 2
    assert drained[-1] == 0
    assert h.events.kinds()[-1] == "stopped"


def test_drain_counts_the_gateways_in_flight_too_and_gives_up_at_the_timeout(
    h: Harness,
) -> None:
    async def scenario() -> None:
        proc = VllmProcess(
            h.spec(),
            fast_policy(drain_timeout=0.3),
            env=h.env,
            on_event=h.events,
            in_flight=lambda: 5,  # the gateway never finishes: the timeout ends the drain
        )
        await proc.start()
        await proc.stop()
        assert proc.state is VllmState.STOPPED

    asyncio.run(scenario())
    drained = [e.in_flight for e in h.events.events if e.kind == "draining"]
    assert drained
    assert set(drained) == {5}
    assert not alive(h.helper_pid(1))


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(h: Harness) -> None:
    async def scenario() -> None:
        proc = h.process(fast_policy(stop_timeout=0.3), FAKE_IGNORE_SIGTERM="1")
        await proc.start()
        pid = proc.pid
        assert pid is not None
        await proc.stop(drain=False)
        assert not alive(pid)

    asyncio.run(scenario())
    assert not alive(h.helper_pid(1))


def test_background_vllm_runs_the_same_supervisor_from_sync_code(h: Harness) -> None:
    with BackgroundVllm(h.spec(), fast_policy(), env=h.env) as bg:
        assert bg.state is VllmState.READY
        assert httpx.get(f"{bg.root_url}/health").status_code == 200
        pid = bg.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: bg.state is not VllmState.READY)
        bg.wait_ready(30)
        assert bg.restarts == 1
        assert bg.base_url.endswith("/v1")
    assert bg.state is VllmState.STOPPED
    bg.stop()  # idempotent


def test_background_wait_ready_times_out_with_a_launch_error(h: Harness) -> None:
    bg = BackgroundVllm(h.spec(FAKE_EXIT_ON_ATTEMPTS="2,3,4,5,6,7,8,9,10"), fast_policy(
        backoff_initial=5.0, backoff_max=5.0), env=h.env)  # fmt: skip
    try:
        bg.start()
        pid = bg.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: bg.state is not VllmState.READY)
        with pytest.raises(VllmLaunchError, match="not ready within"):
            bg.wait_ready(0.3)
    finally:
        bg.stop(drain=False)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="backoff"):
        SupervisorPolicy(backoff_initial=0)
    with pytest.raises(ValueError, match="backoff"):
        SupervisorPolicy(backoff_factor=0.5)
    with pytest.raises(ValueError, match="health"):
        SupervisorPolicy(health_interval=0)
    with pytest.raises(ValueError, match="probe_failures"):
        SupervisorPolicy(probe_failures=0)
    with pytest.raises(ValueError, match="max_restarts"):
        SupervisorPolicy(max_restarts=-1)


def test_ipv6_host_is_bracketed_in_urls(h: Harness) -> None:
    spec = VllmChildSpec(model=static_model_dir(h.model), port=9, log_path=h.log, host="::1")
    assert VllmProcess(spec, env=h.env).base_url == "http://[::1]:9/v1"


def test_an_interpreter_that_cannot_be_executed_is_a_launch_error(h: Harness) -> None:
    h.env.python.chmod(0o644)

    async def scenario() -> VllmProcess:
        proc = h.process()
        with pytest.raises(VllmLaunchError, match="could not start vLLM"):
            await proc.start()
        return proc

    proc = asyncio.run(scenario())
    assert proc.state is VllmState.STOPPED
    assert h.source_log == ["enter", "exit"]


def test_the_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed gateway cannot clean up: the kernel must stop its vLLM child."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import asyncio, sys\n"
        "from airlock.deploy.launcher import _die_with_parent\n"
        "async def main():\n"
        "    p = await asyncio.create_subprocess_exec('sleep', '120', start_new_session=True,"
        " preexec_fn=_die_with_parent)\n"
        "    print(p.pid, flush=True)\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _alive(child):
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its killed parent")


def _alive(pid: int) -> bool:
    # A dead orphan may linger as a zombie until init reaps it: that counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
