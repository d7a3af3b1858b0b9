"""``airlock plan / keygen / seal / unseal / keys-wrap`` through Typer's CliRunner.

(Lives under tests/deploy with the code it drives; src/airlock/cli/deploy.py is a thin
wrapper over airlock.deploy.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from airlock.cli.deploy import register


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_plan_json_contract(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["plan", "--model", "llama-3.3-70b-instruct", "--gpu", "h100-80gb", "--gpus", "2",
         "--dtype", "fp8", "--max-model-len", "32768", "--concurrency", "256",
         "--gpu-price-per-hour", "2.5", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["weights_bytes"] == 72_655_052_800
    assert out["kv_cache_bytes_per_token"] == 327_680
    assert out["tensor_parallel_size"] == 2
    assert out["max_concurrent_sequences"] == 7
    assert out["throughput"]["cost_per_million_output_tokens_usd"] > 0
    assert "estimate" in out["throughput"]["label"]
    launch = out["launch"]
    assert (
        launch["argv"][launch["argv"].index("--model") + 1] == "meta-llama/Llama-3.3-70B-Instruct"
    )
    assert "--no-enable-log-requests" in launch["argv"]
    assert yaml.safe_load(launch["compose"])["services"]["vllm"]["ports"] == ["127.0.0.1:8000:8000"]
    assert len(list(yaml.safe_load_all(launch["kubernetes"]))) == 3


def test_plan_table_and_emitted_artefact(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["plan", "--model", "gemma-3-27b-it", "--gpu", "a100-80gb", "--max-model-len", "32768",
         "--emit", "command", "--model-path", "/srv/gemma", "--lora", "legal=/srv/lora"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gemma-3-27b-it on 1 x a100-80gb" in result.stdout
    assert "KV per token beyond window" in result.stdout
    assert "--model /srv/gemma" in result.stdout
    assert "--lora-modules legal=/srv/lora" in result.stdout


def test_plan_that_does_not_fit_exits_1_with_reasons(app: typer.Typer, runner: CliRunner) -> None:
    args = ["plan", "--model", "llama-3.3-70b-instruct", "--gpu", "l4-24gb"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["fits"] is False
    assert out["launch"] is None
    assert out["reasons"]
    assert out["suggestions"]
    table = runner.invoke(app, args)
    assert table.exit_code == 1
    assert "why not" in table.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gpu", "b200"], "unknown GPU 'b200'; valid names: a100-40gb"),
        (["--gpu", "h100-80gb", "--dtype", "int8"], "dtype must be one of bf16, fp8, int4-awq"),
        (["--gpu", "h100-80gb", "--gpus", "0"], "gpus must be between 1 and 64"),
        (["--gpu", "h100-80gb", "--lora", "nope"], "NAME=PATH"),
    ],
)
def test_plan_errors(app: typer.Typer, runner: CliRunner, extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", "--model", "llama-3.1-8b-instruct", *extra])
    assert result.exit_code == 1
    assert message in result.stderr


def test_keygen_seal_unseal_rotate(app: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    data = os.urandom(300_000)
    src.write_bytes(data)
    r = runner.invoke(app, ["keygen", str(tmp_path / "k1")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "k1").read_text().strip() not in r.stdout  # the key is never printed
    assert runner.invoke(app, ["keygen", str(tmp_path / "k2")]).exit_code == 0
    assert runner.invoke(app, ["keygen", str(tmp_path / "k1")]).exit_code == 1

    sealed = tmp_path / "model.sealed"
    r = runner.invoke(app, ["seal", str(src), str(sealed), "--key-file", str(tmp_path / "k1")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out.gguf"
    r = runner.invoke(app, ["unseal", str(sealed), str(out), "--key-file", str(tmp_path / "k2")])
    assert r.exit_code == 1
    assert "wrong key" in r.stderr
    assert not out.exists()

    r = runner.invoke(
        app,
        ["keys-wrap", str(sealed), "--key-file", str(tmp_path / "k1"),
         "--new-key-file", str(tmp_path / "k2")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["unseal", str(sealed), str(out), "--key-env", "AIRLOCK_K2"],
        env={"AIRLOCK_K2": (tmp_path / "k2").read_text().strip()},
    )
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == data


def test_tampered_file_exits_nonzero_and_writes_nothing(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "m").write_bytes(os.urandom(100_000))
    runner.invoke(app, ["keygen", str(tmp_path / "k")])
    runner.invoke(
        app, ["seal", str(tmp_path / "m"), str(tmp_path / "s"), "--key-file", str(tmp_path / "k")]
    )
    raw = bytearray((tmp_path / "s").read_bytes())
    raw[-20] ^= 1
    (tmp_path / "s").write_bytes(bytes(raw))
    r = runner.invoke(
        app, ["unseal", str(tmp_path / "s"), str(tmp_path / "o"), "--key-file", str(tmp_path / "k")]
    )
    assert r.exit_code == 1
    assert "failed authentication" in r.stderr
    assert not (tmp_path / "o").exists()


def test_key_options_must_name_exactly_one_source(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "m").write_bytes(b"x")
    r = runner.invoke(app, ["seal", str(tmp_path / "m"), str(tmp_path / "s")])
    assert r.exit_code == 2
    assert "exactly one of --key-file" in r.output
    r = runner.invoke(
        app, ["seal", str(tmp_path / "m"), str(tmp_path / "s"), "--key-env", "A", "--key-file", "B"]
    )
    assert r.exit_code == 2
    assert not (tmp_path / "s").exists()
