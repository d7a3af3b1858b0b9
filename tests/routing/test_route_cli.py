"""`airlock train-router` / `airlock eval-router` through Typer's CliRunner."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from airlock.cli.route import register
from airlock.routing.scorer import ComplexityScorer, load_weights
from tests.routing.synthetic import synthetic_rows, write_csv


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "data.csv", synthetic_rows(150))


def test_train_then_evaluate_held_out(app: typer.Typer, data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    weights = tmp_path / "w.json"
    trained = runner.invoke(app, ["train-router", "--data", str(data), "--out", str(weights)])
    assert trained.exit_code == 0, trained.output
    assert "threshold for 30% strong calls" in trained.output
    loaded = load_weights(weights)
    assert loaded.metadata["split"] == "train"
    assert loaded.metadata["rows"] < 150  # the held-out 30% was not used
    assert 0.0 <= ComplexityScorer(loaded).score("anything") <= 1.0

    plot = tmp_path / "plot.png"
    args = ["eval-router", "--data", str(data), "--scorer", str(weights), "--split", "test"]
    result = runner.invoke(app, [*args, "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["split"] == "test"
    assert set(doc["subsets"]) == {"all", "gsm8k", "mmlu"}
    mine = doc["subsets"]["all"]["routers"]["airlock scorer"]
    assert mine["apgr"] > doc["subsets"]["all"]["routers"]["random (expected)"]["apgr"]
    assert plot.read_bytes()[:4] == b"\x89PNG"

    table = runner.invoke(app, ["eval-router", "--data", str(data), "--scorer", str(weights)])
    assert table.exit_code == 0
    assert "prompt length" in table.stdout
    assert "trained on this file" in table.stderr  # --split all includes training rows


def test_builtin_scorer_is_the_default(app: typer.Typer, data: Path) -> None:
    result = CliRunner().invoke(app, ["eval-router", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "airlock scorer" in result.stdout


def test_bad_inputs_fail_cleanly(app: typer.Typer, data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["eval-router", "--data", str(tmp_path / "none.csv")])
    assert missing.exit_code == 1
    assert "cannot read routing data" in missing.stderr

    bad_weights = tmp_path / "bad.json"
    bad_weights.write_text('{"format": "airlock-complexity-scorer", "version": 7}', "utf-8")
    wrong = runner.invoke(app, ["eval-router", "--data", str(data), "--scorer", str(bad_weights)])
    assert wrong.exit_code == 1
    assert "unsupported 'version'" in wrong.stderr

    refused = runner.invoke(
        app,
        ["train-router", "--data", str(data), "--out", str(tmp_path / "x.json"), "--split", "test"],
    )
    assert refused.exit_code == 2
    assert not (tmp_path / "x.json").exists()

    flat = tmp_path / "flat.csv"
    write_csv(flat, [(f"p{i}", 1, 1, "gsm8k") for i in range(20)])
    nothing = runner.invoke(
        app,
        ["train-router", "--data", str(flat), "--out", str(tmp_path / "y.json"), "--split", "all"],
    )
    assert nothing.exit_code == 1
    assert "nothing to learn" in nothing.stderr
    assert not (tmp_path / "y.json").exists()
