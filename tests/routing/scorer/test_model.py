import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import AirlockError
from airlock.routing.scorer import (
    COMPLEX_FLOOR,
    DENSE_FEATURES,
    SEGMENTS,
    SIMPLE_CEILING,
    ComplexityScorer,
    WeightsFileError,
    dump_weights,
    load_weights,
    weights_from_dict,
)

MC = "Which is prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:"


def _doc(weight_on: str | None = None, weight: float = 0.0) -> dict[str, Any]:
    segment = {
        "intercept": -1.0,
        "features": [
            {"name": n, "mean": 0.0, "scale": 1.0, "weight": weight if n == weight_on else 0.0}
            for n in DENSE_FEATURES
        ],
        # Logit -5 is rank 0, 0 is the median, +5 is rank 1.
        "rank_logits": [-5.0, 0.0, 5.0],
    }
    return {
        "format": "airlock-complexity-scorer",
        "version": 2,
        "model": "segmented-logistic",
        "max_chars": 6000,
        "clip": 50.0,
        "segments": {name: copy.deepcopy(segment) for name in SEGMENTS},
        "calibration": {"score_quantiles": [0.1, 0.2, 0.9], "pgr": [0.0, 0.7, 1.0]},
        "metadata": {},
    }


@pytest.fixture(scope="module")
def packaged() -> ComplexityScorer:
    return ComplexityScorer.load()


def test_packaged_weights_load_and_score_in_bounds(packaged: ComplexityScorer) -> None:
    assert packaged.weights.metadata["split"] == "train"
    for text in ["", "hi", MC, "∫∫∫" * 3000, "\x00" * 50, "2+2=" * 1000, "word " * 20000]:
        score = packaged.score(text)
        assert 0.0 <= score <= 1.0
        assert math.isfinite(score)


def test_packaged_threshold_helpers(packaged: ComplexityScorer) -> None:
    t10, t30 = packaged.threshold_for_strong_share(0.1), packaged.threshold_for_strong_share(0.3)
    assert 0.0 < t30 < t10 < 1.0
    # Scores are within-family ranks on the training split: share s -> threshold 1 - s.
    assert t30 == pytest.approx(0.7, abs=0.02)
    assert t10 == pytest.approx(0.9, abs=0.02)
    assert packaged.threshold_for_quality(0.5) == packaged.threshold_for_strong_share(
        packaged.calibration.share_for_quality(0.5)
    )


def test_explain_sums_to_the_logit_and_carries_no_text(packaged: ComplexityScorer) -> None:
    text = "The plaintiff Zyxwvut sued for breach. Which claim wins?\nA. one\nB. two"
    parts = packaged.explain(text)
    assert parts[0][0] == "bias:multiple_choice"
    assert {name for name, _ in parts[1:]} == set(DENSE_FEATURES)
    logit = math.fsum(v for _, v in parts)
    assert logit == pytest.approx(packaged.logit(text))
    assert 1.0 / (1.0 + math.exp(-logit)) == pytest.approx(packaged.probability(text))
    detail = packaged.detail(text)
    assert detail.logit == pytest.approx(logit)
    assert detail.score == packaged.score(text) == detail.rank  # no rules for MC prompts
    assert detail.rule is None
    magnitudes = [abs(v) for _, v in parts[1:]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert "Zyxwvut" not in repr(parts)


def test_score_is_monotonic_in_a_positively_weighted_feature() -> None:
    up = ComplexityScorer(weights_from_dict(_doc("log_chars", 1.0)))
    down = ComplexityScorer(weights_from_dict(_doc("log_chars", -1.0)))
    # Digits keep the short prompts out of the prior rules: only the model speaks.
    prompts = ["1", "1" * 10, "1" * 100, "1" * 1000]
    for fn in (up.probability, up.score):
        assert [fn(p) for p in prompts] == sorted(fn(p) for p in prompts)
        assert fn(prompts[-1]) > fn(prompts[0])
    assert down.score(prompts[-1]) < down.score(prompts[0])
    flat = ComplexityScorer(weights_from_dict(_doc()))
    assert flat.probability("1") == pytest.approx(1.0 / (1.0 + math.e))  # sigmoid(-1)
    assert flat.score("1") == pytest.approx(0.4)  # logit -1 on the -5..0 half of the ranks


def test_segments_use_their_own_weights() -> None:
    doc = _doc()
    doc["segments"]["multiple_choice"]["intercept"] = 2.0
    scorer = ComplexityScorer(weights_from_dict(doc))
    assert scorer.probability(MC) > 0.85 > 0.3 > scorer.probability("What is 2 + 2?")
    assert scorer.score(MC) == pytest.approx(0.7)
    assert scorer.score("What is 2 + 2?") == pytest.approx(0.4)


def test_score_is_the_rank_within_the_segment() -> None:
    # Same logit, different segment quantiles: the rank, not the probability, decides.
    doc = _doc()
    doc["segments"]["multiple_choice"]["rank_logits"] = [-9.0, -1.0, 0.0]
    scorer = ComplexityScorer(weights_from_dict(doc))
    assert scorer.probability(MC) == pytest.approx(scorer.probability("What is 2 + 2?"))
    assert scorer.score(MC) == pytest.approx(0.5)
    assert scorer.score("What is 2 + 2?") == pytest.approx(0.4)
    doc["segments"]["multiple_choice"]["rank_logits"] = [-9.0, -8.0, -7.0]
    assert ComplexityScorer(weights_from_dict(doc)).score(MC) == 1.0  # above every training logit


def test_prior_rules_move_free_form_instructions_into_their_bands() -> None:
    scorer = ComplexityScorer(weights_from_dict(_doc()))
    simple = scorer.detail("Summarise this email: the office is closed on Monday.")
    assert simple.rule == "simple:summarise"
    assert simple.score == pytest.approx(SIMPLE_CEILING * simple.rank)
    hard = scorer.detail("Prove that there are infinitely many primes.")
    assert hard.rule == "complex:proof"
    assert hard.score == pytest.approx(COMPLEX_FLOOR + (1 - COMPLEX_FLOOR) * hard.rank)
    # Multiple-choice prompts are what the data covers: no rules there.
    quiz = "Summarise: which is prime?\nA. 4\nB. 6\nC. 7\nD. 9"
    assert scorer.detail(quiz).segment == "multiple_choice"
    assert scorer.detail(quiz).rule is None


def test_round_trip_is_lossless(tmp_path: Path, packaged: ComplexityScorer) -> None:
    path = tmp_path / "w.json"
    dump_weights(packaged.weights, path)
    again = ComplexityScorer(load_weights(path))
    for text in ["", MC, "a long question " * 40]:
        assert again.score(text) == packaged.score(text)


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _broken(change: str) -> object:
    doc: Any = _doc()
    if change == "format":
        doc["format"] = "something-else"
    elif change == "version":
        doc["version"] = 99
    elif change == "segment_missing":
        del doc["segments"]["free_form"]
    elif change == "feature_renamed":
        doc["segments"]["free_form"]["features"][0]["name"] = "mystery"
    elif change == "scale_zero":
        doc["segments"]["free_form"]["features"][3]["scale"] = 0
    elif change == "weight_string":
        doc["segments"]["multiple_choice"]["features"][1]["weight"] = "1.0"
    elif change == "quantiles_unsorted":
        doc["calibration"]["score_quantiles"] = [0.9, 0.1]
    elif change == "ranks_unsorted":
        doc["segments"]["free_form"]["rank_logits"] = [1.0, 0.0]
    elif change == "ranks_missing":
        del doc["segments"]["multiple_choice"]["rank_logits"]
    elif change == "max_chars":
        doc["max_chars"] = 0
    elif change == "top_level_list":
        doc = [doc]
    return doc


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("format", "'format'"),
        ("version", "version"),
        ("segment_missing", "segments"),
        ("feature_renamed", "unknown: ['mystery']"),
        ("scale_zero", "scale must be > 0"),
        ("weight_string", "segments.multiple_choice.features[1].weight"),
        ("quantiles_unsorted", "non-decreasing"),
        ("ranks_unsorted", "segments.free_form.rank_logits must hold"),
        ("ranks_missing", "segments.multiple_choice.rank_logits must be a list"),
        ("max_chars", "max_chars"),
        ("top_level_list", "JSON object"),
    ],
)
def test_bad_weight_files_give_clear_errors(tmp_path: Path, change: str, expected: str) -> None:
    path = _write(tmp_path, _broken(change))
    with pytest.raises(WeightsFileError) as info:
        load_weights(path)
    assert expected in info.value.message
    assert str(path) in info.value.message
    assert isinstance(info.value, AirlockError)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsFileError, match="cannot read"):
        load_weights(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": ', encoding="utf-8")
    with pytest.raises(WeightsFileError, match="not valid JSON"):
        load_weights(bad)
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(_doc()).replace('"clip": 50.0', '"clip": NaN'), encoding="utf-8")
    with pytest.raises(WeightsFileError, match="clip must be a finite number"):
        load_weights(nan)
