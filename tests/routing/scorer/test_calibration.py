import math

import numpy as np
import pytest

from airlock.routing.scorer import Calibration, build_calibration


def test_threshold_for_share_matches_the_training_distribution() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(5000)
    weak = rng.integers(0, 2, 5000)
    strong = np.maximum(weak, rng.integers(0, 2, 5000))
    cal = build_calibration(scores, scores, weak, strong)
    for share in (0.1, 0.3, 0.5, 0.9):
        threshold = cal.threshold_for_share(share)
        assert np.mean(scores >= threshold) == pytest.approx(share, abs=0.01)
    assert cal.threshold_for_share(0.0) == math.inf
    assert cal.threshold_for_share(1.0) == -math.inf
    assert cal.threshold_for_share(0.2) > cal.threshold_for_share(0.4)


def test_quality_target_uses_the_out_of_fold_curve() -> None:
    # Rows 0..9: the first two gain from strong, nothing else changes. An oracle-like
    # out-of-fold ranking recovers the whole gap with 20% strong calls.
    weak = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    strong = np.ones(10, dtype=int)
    oof = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], dtype=float)
    cal = build_calibration(oof / 10, oof, weak, strong)
    assert cal.share_for_quality(1.0) == pytest.approx(0.2)
    assert cal.share_for_quality(0.5) == pytest.approx(0.1)
    # Reversed ranking: the gain comes last, so all of it needs (nearly) every call.
    reversed_cal = build_calibration(oof / 10, -oof, weak, strong)
    assert reversed_cal.share_for_quality(1.0) == pytest.approx(1.0)
    assert cal.threshold_for_quality(0.5) == cal.threshold_for_share(0.1)


@pytest.mark.parametrize("share", [-0.1, 1.1, float("nan")])
def test_bad_share_is_rejected(share: float) -> None:
    cal = Calibration(score_quantiles=(0.0, 1.0), pgr=(0.0, 1.0))
    with pytest.raises(ValueError, match="between 0 and 1"):
        cal.threshold_for_share(share)


@pytest.mark.parametrize("target", [0.0, 1.2])
def test_bad_quality_target_is_rejected(target: float) -> None:
    cal = Calibration(score_quantiles=(0.0, 1.0), pgr=(0.0, 1.0))
    with pytest.raises(ValueError, match="quality target"):
        cal.share_for_quality(target)


def test_invalid_calibration_tables_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(score_quantiles=(0.5, 0.1), pgr=(0.0, 1.0))
    with pytest.raises(ValueError, match="at least two"):
        Calibration(score_quantiles=(0.5,), pgr=(0.0, 1.0))
    with pytest.raises(ValueError, match="not more accurate"):
        build_calibration([0.1, 0.2], [0.1, 0.2], [1, 1], [1, 1])
