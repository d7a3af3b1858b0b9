import json
from pathlib import Path

import pytest

from airlock.routing.evaluation import (
    LENGTH_ROUTER,
    ORACLE_ROUTER,
    RANDOM_ROUTER,
    RoutingRow,
    evaluate_routers,
    plot_reports,
    render_text,
    reports_to_dict,
)


def _rows() -> list[RoutingRow]:
    # gsm8k: the long prompts need strong. mmlu: the short prompt does (length misleads).
    return [
        RoutingRow("long long long maths problem", 0, 1, "gsm8k"),
        RoutingRow("short sum", 1, 1, "gsm8k"),
        RoutingRow("longer still maths problem!", 0, 1, "gsm8k"),
        RoutingRow("tiny", 1, 1, "gsm8k"),
        RoutingRow("hard", 0, 1, "mmlu/law"),
        RoutingRow("an easy and rather long question", 1, 1, "mmlu/law"),
        RoutingRow("medium question", 0, 0, "mmlu/law"),
        RoutingRow("another medium one", 1, 1, "mmlu/misc"),
    ]


def _oracle_scorer(rows: list[RoutingRow]) -> dict[str, float]:
    return {r.prompt: float(r.strong_correct - r.weak_correct) for r in rows}


def test_report_has_subsets_baselines_and_exact_metrics() -> None:
    rows = _rows()
    table = _oracle_scorer(rows)
    reports = evaluate_routers(rows, {"mine": table.__getitem__})
    assert [r.subset for r in reports] == ["all", "gsm8k", "mmlu"]
    every = reports[0]
    assert every.rows == 8
    assert every.weak_accuracy == pytest.approx(4 / 8)
    assert every.strong_accuracy == pytest.approx(7 / 8)
    by_name = {m.name: m for m in every.routers}
    assert set(by_name) == {"mine", LENGTH_ROUTER, RANDOM_ROUTER, ORACLE_ROUTER}
    assert by_name["mine"].apgr == pytest.approx(by_name[ORACLE_ROUTER].apgr)
    assert by_name[RANDOM_ROUTER].apgr == pytest.approx(0.5)
    # gsm8k: gap 0.5; the oracle's top 2 of 4 recover it all -> CPT(50%) = 25%.
    gsm = {m.name: m for m in reports[1].routers}
    assert gsm["mine"].cpt50 == pytest.approx(0.25)
    assert gsm["mine"].cheaper_than_random == pytest.approx(2.0)
    # Length happens to be right on gsm8k here, so it ties the oracle there.
    assert gsm[LENGTH_ROUTER].apgr == pytest.approx(gsm["mine"].apgr)
    low, high = every.random_apgr_95
    assert low < 0.5 < high


def test_subsets_without_a_gap_are_left_out() -> None:
    rows = [RoutingRow("a", 1, 1, "x/1"), RoutingRow("bb", 0, 1, "y/1"), RoutingRow("c", 1, 1, "y")]
    reports = evaluate_routers(rows, {})
    assert [r.subset for r in reports] == ["all", "y"]


def test_text_json_and_plot(tmp_path: Path) -> None:
    rows = _rows()
    reports = evaluate_routers(rows, {"mine": _oracle_scorer(rows).__getitem__})
    text = render_text(reports)
    assert "== gsm8k" in text
    assert "RouteLLM (published)" in text
    doc = json.loads(json.dumps(reports_to_dict(reports)))
    assert doc["gsm8k"]["published_routellm"]["cheaper_than_random"] == 1.49
    assert doc["all"]["published_routellm"] is None
    assert doc["all"]["routers"]["mine"]["curve"]["strong_share"][0] == 0.0
    out = tmp_path / "curve.png"
    plot_reports(reports, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rows"):
        evaluate_routers([], {})
