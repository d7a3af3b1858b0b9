"""The vLLM child's argv and environment: owned flags, refused flags, forced environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.deploy.launcher_flags import (
    API_SERVER_MODULE,
    COMPLIANCE_FLAGS,
    LaunchFlagError,
    build_command,
    engine_args_from_argv,
)
from airlock.deploy.launcher_metrics import in_flight_from_metrics

PY = Path("/venv/bin/python")
MODEL = Path("/models/smol")


def cmd(engine_args: list[str] | tuple[str, ...] = (), **kw: object) -> tuple[str, ...]:
    params: dict[str, object] = {
        "python": PY,
        "model_dir": MODEL,
        "host": "127.0.0.1",
        "port": 8001,
        "served_model_name": "smol",
        "engine_args": engine_args,
        "base_env": {},
        **kw,
    }
    return build_command(**params).argv  # type: ignore[arg-type]


def value_of(argv: tuple[str, ...], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} appears {argv.count(flag)} times"
    return argv[argv.index(flag) + 1]


def test_argv_runs_the_api_server_module_with_the_launcher_bind_flags() -> None:
    argv = cmd(["--max-model-len", "2048"])
    assert argv[:3] == (str(PY), "-m", API_SERVER_MODULE)
    assert value_of(argv, "--model") == str(MODEL)
    assert value_of(argv, "--host") == "127.0.0.1"
    assert value_of(argv, "--port") == "8001"
    assert value_of(argv, "--served-model-name") == "smol"
    assert value_of(argv, "--max-model-len") == "2048"
    # The compliance flags come last, so nothing before them can undo them.
    assert argv[-len(COMPLIANCE_FLAGS) :] == COMPLIANCE_FLAGS
    assert "--no-enable-log-requests" in argv
    assert value_of(argv, "--max-log-len") == "0"


@pytest.mark.parametrize(
    "planner_argv",
    [
        # A planner's flag list, its full python -m command, and a `vllm serve` line.
        ["--model", "/elsewhere", "--host", "0.0.0.0", "--port", "9", "--max-num-seqs", "8"],
        ["python", "-m", API_SERVER_MODULE, "--model=/elsewhere", "--port=9", "--max-num-seqs",
         "8", "--served-model-name", "other"],
        ["vllm", "serve", "/elsewhere", "--host", "0.0.0.0", "--max-num-seqs", "8"],
    ],
)  # fmt: skip
def test_planner_argv_in_any_form_keeps_its_engine_flags_and_loses_the_bind_ones(
    planner_argv: list[str],
) -> None:
    argv = cmd(planner_argv)
    assert value_of(argv, "--model") == str(MODEL)
    assert value_of(argv, "--host") == "127.0.0.1"
    assert value_of(argv, "--port") == "8001"
    assert value_of(argv, "--served-model-name") == "smol"
    assert value_of(argv, "--max-num-seqs") == "8"
    assert "/elsewhere" not in " ".join(argv)
    assert not any(tok.startswith(("--model=", "--port=")) for tok in argv)


def test_engine_args_from_argv_forms() -> None:
    assert engine_args_from_argv(["--a", "1"]) == ["--a", "1"]
    assert engine_args_from_argv(["python", "-m", API_SERVER_MODULE, "--a"]) == ["--a"]
    assert engine_args_from_argv(["vllm", "serve", "m", "--a"]) == ["--a"]
    assert engine_args_from_argv(["vllm", "serve", "--a"]) == ["--a"]
    assert engine_args_from_argv([]) == []


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--enable-log-requests"], "--enable-log-requests"),
        (["--enable-log-outputs"], "--enable-log-outputs"),
        (["--log-error-stack"], "--log-error-stack"),
        (["--max-log-len", "100"], "--max-log-len"),
        (["--max-log-len=100"], "--max-log-len"),
        (["--api-key", "s3cret"], "--api-key"),
        (["--api-key=s3cret"], "--api-key"),
        (["--uds", "/tmp/sock"], "--uds"),
        (["--uvicorn-log-level", "debug"], "--uvicorn-log-level"),
        (["--uvicorn-log-level=TRACE"], "--uvicorn-log-level"),
    ],
)
def test_flags_that_could_log_content_or_leak_the_key_are_refused(
    flags: list[str], named: str
) -> None:
    with pytest.raises(LaunchFlagError, match=named) as err:
        cmd(["--max-num-seqs", "4", *flags])
    assert "s3cret" not in err.value.message  # names the flag, never its value


def test_harmless_log_levels_pass() -> None:
    argv = cmd(["--uvicorn-log-level", "warning"])
    assert value_of(argv, "--uvicorn-log-level") == "warning"


def test_a_leading_positional_is_refused() -> None:
    with pytest.raises(LaunchFlagError, match="start with a flag"):
        cmd(["/some/model", "--max-num-seqs", "4"])


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_bad_port(port: int) -> None:
    with pytest.raises(LaunchFlagError, match="port"):
        cmd(port=port)


@pytest.mark.parametrize("name", ["", "two words", "tab\tname"])
def test_bad_served_model_name(name: str) -> None:
    with pytest.raises(LaunchFlagError, match="served model name"):
        cmd(served_model_name=name)


def test_environment_forces_safe_logging_and_carries_the_key() -> None:
    parent = {
        "PATH": "/usr/bin",
        "VLLM_LOGGING_LEVEL": "DEBUG",
        "VLLM_DEBUG_LOG_API_SERVER_RESPONSE": "true",
        "VLLM_LOGGING_CONFIG_PATH": "/etc/verbose.json",
        "VLLM_API_KEY": "inherited",
    }
    command = build_command(
        python=PY, model_dir=MODEL, host="127.0.0.1", port=1, served_model_name="m",
        api_key="k1", base_env=parent, extra_env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )  # fmt: skip
    env = command.env
    assert env["PATH"] == "/usr/bin"
    assert env["VLLM_LOGGING_LEVEL"] == "INFO"
    assert env["VLLM_DEBUG_LOG_API_SERVER_RESPONSE"] == "false"
    assert "VLLM_LOGGING_CONFIG_PATH" not in env
    assert env["VLLM_API_KEY"] == "k1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert "k1" not in command.argv
    assert "k1" not in repr(command)  # the env (with the key) is kept out of repr


def test_inherited_key_is_not_passed_on_when_none_is_given() -> None:
    command = build_command(
        python=PY, model_dir=MODEL, host="127.0.0.1", port=1, served_model_name="m",
        base_env={"VLLM_API_KEY": "inherited"},
    )  # fmt: skip
    assert "VLLM_API_KEY" not in command.env


@pytest.mark.parametrize(
    "name", ["VLLM_API_KEY", "VLLM_LOGGING_LEVEL", "VLLM_LOGGING_CONFIG_PATH", "PYTHONUNBUFFERED"]
)
def test_extra_env_cannot_override_what_the_launcher_sets(name: str) -> None:
    with pytest.raises(LaunchFlagError, match=name):
        build_command(
            python=PY, model_dir=MODEL, host="127.0.0.1", port=1, served_model_name="m",
            base_env={}, extra_env={name: "x"},
        )  # fmt: skip


def test_empty_api_key_is_refused() -> None:
    with pytest.raises(LaunchFlagError, match="API key"):
        cmd(api_key="")


METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smol"} 3.0
vllm:num_requests_running{engine="1",model_name="smol"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="smol"} 2.0
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="smol",reason="capacity"} 7.0
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{engine="0",model_name="smol"} 9.0
"""


def test_in_flight_sums_running_and_waiting_over_engines_only() -> None:
    assert in_flight_from_metrics(METRICS) == 6


def test_in_flight_of_a_server_without_the_gauges_is_zero() -> None:
    assert in_flight_from_metrics("# TYPE other gauge\nother 4.0\n") == 0
    assert in_flight_from_metrics("") == 0


def test_in_flight_rejects_text_that_is_not_prometheus() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the parser's own message varies
        in_flight_from_metrics("vllm:num_requests_running{ this is not { valid\n")
