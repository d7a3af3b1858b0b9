from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from airlock.cli.route import register
from airlock.routing.evaluation import (
    DataFileError,
    LabelledPrompt,
    evaluate_labelled,
    load_labelled_csv,
)

FREE_FORM_SET = Path(__file__).resolve().parents[1] / "data" / "free_form.csv"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_evaluate_labelled_counts_share_agreement_and_misses() -> None:
    rows = [
        LabelledPrompt("short", "weak", 1),
        LabelledPrompt("a much longer prompt", "strong", 2),
        LabelledPrompt("medium one", "strong", 3),
        LabelledPrompt("another long prompt here", "weak", 4),
    ]
    report = evaluate_labelled(rows, lambda text: len(text) / 30, threshold=0.5)
    assert report.sent_strong == 2  # the two prompts of 20+ characters
    assert report.strong_share == 0.5
    assert report.agreed == 2
    assert report.misses == ((3, "strong"), (4, "weak"))
    text = report.render()
    assert "50.0% sent strong" in text
    assert "row 3: expected strong" in text
    assert "medium one" not in text  # rows are named by number, never by prompt text
    with pytest.raises(ValueError, match="no labelled prompts"):
        evaluate_labelled([], len, 0.5)


def test_load_labelled_csv_reads_multiline_prompts_and_rejects_bad_labels(
    tmp_path: Path,
) -> None:
    good = _write(tmp_path, 'prompt,expected,rationale\n"two\nlines",weak,x\nhi,strong,y\n')
    rows = load_labelled_csv(good)
    assert [(r.prompt, r.expected, r.row) for r in rows] == [
        ("two\nlines", "weak", 1),
        ("hi", "strong", 2),
    ]
    with pytest.raises(DataFileError, match="weak or strong"):
        load_labelled_csv(_write(tmp_path, "prompt,expected\nhi,maybe\n"))
    with pytest.raises(DataFileError, match="need columns"):
        load_labelled_csv(_write(tmp_path, "text,label\nhi,weak\n"))
    with pytest.raises(DataFileError, match="no rows"):
        load_labelled_csv(_write(tmp_path, "prompt,expected\n"))
    with pytest.raises(DataFileError, match="cannot read"):
        load_labelled_csv(tmp_path / "absent.csv")


def test_cli_reports_the_packaged_scorer_on_the_free_form_set() -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["eval-router-labelled", "--prompts", str(FREE_FORM_SET)])
    assert result.exit_code == 0, result.output
    assert "61 labelled prompts, threshold 0.7000" in result.stdout
    explicit = runner.invoke(
        app,
        ["eval-router-labelled", "--prompts", str(FREE_FORM_SET), "--threshold", "0"],
    )
    assert "100.0% sent strong" in explicit.stdout  # every score is >= 0
    missing = runner.invoke(app, ["eval-router-labelled", "--prompts", "/nonexistent.csv"])
    assert missing.exit_code == 1
    assert "cannot read" in missing.output
