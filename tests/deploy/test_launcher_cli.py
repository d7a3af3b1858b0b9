"""``airlock vllm check|convert|launch`` through Typer's test runner."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from airlock.cli import vllm as vllm_cli
from tests.deploy.test_vllm_env import make_model, make_venv
from tests.integration.fake_vllm import make_fake_vllm_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root (keeps `vllm` a sub-command)."""

    vllm_cli.register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["vllm", *args])
    return result.exit_code, result.output


def test_check_reports_missing_setup_with_the_fix(app: typer.Typer, tmp_path: Path) -> None:
    code, out = run(app, "check", "--venv", str(tmp_path / "none"))
    assert code == 2
    assert "run scripts/setup-vllm.sh" in out


def test_check_reports_a_ready_setup(app: typer.Typer, tmp_path: Path) -> None:
    venv, model = make_venv(tmp_path), make_model(tmp_path)
    code, out = run(app, "check", "--venv", str(venv), "--model", str(model))
    assert code == 0, out
    assert str(venv) in out
    assert str(model) in out


def test_convert_failure_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    venv = make_venv(tmp_path)
    (venv / "bin" / "python").write_text("#!/bin/sh\necho boom >&2\nexit 1\n")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    code, out = run(app, "convert", "--venv", str(venv), "--gguf", str(gguf))
    assert code == 2
    assert "conversion failed (exit 1)" in out


def launch_args(tmp_path: Path, *extra: str) -> list[str]:
    venv, model = make_venv(tmp_path), make_model(tmp_path)
    return ["launch", "--venv", str(venv), "--model", str(model), "--port", "8123", *extra]


def test_dry_run_prints_the_command_with_compliance_flags(app: typer.Typer, tmp_path: Path) -> None:
    code, out = run(
        app, *launch_args(tmp_path, "--dry-run", "--engine-args", "--max-model-len 1024")
    )
    assert code == 0, out
    argv = shlex.split(out.strip())
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--max-model-len") + 1] == "1024"
    assert "--no-enable-log-requests" in argv


def test_dry_run_with_the_planner_uses_its_flags(app: typer.Typer, tmp_path: Path) -> None:
    code, out = run(
        app,
        *launch_args(
            tmp_path, "--dry-run", "--catalog-model", "smollm2-135m-instruct",
            "--gpu", "l4-24gb", "--max-model-len", "2048",
        ),
    )  # fmt: skip
    assert code == 0, out
    argv = shlex.split(out.strip())
    assert argv[argv.index("--max-model-len") + 1] == "2048"
    assert "--max-num-seqs" in argv
    assert argv.count("--model") == 1
    assert argv[argv.index("--model") + 1] == str(tmp_path / "model")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--engine-args", "--enable-log-requests"), "--enable-log-requests is not allowed"),
        (("--gpu", "l4-24gb"), "--catalog-model and --gpu go together"),
        (("--catalog-model", "no-such-model", "--gpu", "l4-24gb"), "no-such-model"),
        (("--host", "0.0.0.0"), "refusing to serve on 0.0.0.0 without an API key"),
    ],
)
def test_launch_refuses_bad_requests(
    app: typer.Typer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    code, out = run(app, *launch_args(tmp_path, "--dry-run", *extra))
    assert code == 2
    assert message in out


def test_launch_serves_until_sigterm_then_drains_and_stops(
    app: typer.Typer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_env = make_fake_vllm_env(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAKE_STATE_DIR", str(state))
    monkeypatch.setenv("VLLM_API_KEY", "cli-key")
    model = make_model(tmp_path)
    port = free_port()
    log = tmp_path / "vllm.log"

    def stop_when_healthy() -> None:
        # The stand-in marks the launcher's first successful /health probe; the launcher
        # reports ready right after it. Then Ctrl-C's cousin arrives.
        deadline = time.monotonic() + 60
        while not (state / "healthy-1").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_when_healthy)
    stopper.start()
    code, out = run(
        app, "launch", "--venv", str(fake_env.venv), "--model", str(model),
        "--port", str(port), "--log-file", str(log), "--drain-timeout", "1",
    )  # fmt: skip
    stopper.join()
    assert code == 0, out
    assert f"serving smollm2-135m-instruct at http://127.0.0.1:{port}/v1" in out
    assert "stopping vLLM" in out
    assert "vLLM stopped" in out
    assert "cli-key" not in out
    assert "cli-key" not in log.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
