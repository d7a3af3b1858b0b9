import numpy as np
import pytest

from airlock.routing.evaluation import apgr, cpt, expected_random_curve, router_curve


def test_curve_cpt_apgr_on_a_hand_computed_example() -> None:
    # weak acc 0.5, strong 0.75. The top prompt is the only one that gains from strong.
    curve = router_curve([0.9, 0.8, 0.2, 0.1], [0, 1, 1, 0], [1, 1, 1, 0])
    assert curve.share.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.accuracy.tolist() == [0.5, 0.75, 0.75, 0.75, 0.75]
    assert curve.pgr.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    # Area: 0.25 * (0 + 1) / 2 + 0.75 * 1 = 0.875
    assert apgr(curve) == pytest.approx(0.875)
    assert cpt(curve, 0.5) == pytest.approx(0.125)
    assert cpt(curve, 0.8) == pytest.approx(0.2)
    assert cpt(curve, 1.0) == pytest.approx(0.25)


def test_a_router_that_first_picks_a_loss_pays_for_it() -> None:
    # Top prompt: weak right, strong wrong (gain -1). PGR: 0, -1, 0, 1, 1.
    curve = router_curve([4, 3, 2, 1], [1, 0, 0, 1], [0, 1, 1, 1])
    assert curve.pgr.tolist() == pytest.approx([0.0, -1.0, 0.0, 1.0, 1.0])
    # 0.25 * ((0 - 1) + (-1 + 0) + (0 + 1) + (1 + 1)) / 2 = 0.125
    assert apgr(curve) == pytest.approx(0.125)
    assert cpt(curve, 0.5) == pytest.approx(0.625)  # crosses between shares 0.5 and 0.75
    assert cpt(curve, 0.8) == pytest.approx(0.7)


def test_tied_scores_are_routed_together() -> None:
    curve = router_curve([1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1])
    assert curve.share.tolist() == [0.0, 0.5, 1.0]
    assert curve.accuracy.tolist() == [0.5, 0.75, 1.0]
    assert apgr(curve) == pytest.approx(0.5)  # 0.5 * 0.25 + 0.5 * 0.75
    assert cpt(curve, 0.5) == pytest.approx(0.5)


def test_random_router_expectation_is_the_diagonal() -> None:
    curve = expected_random_curve([0, 1, 1, 0], [1, 1, 1, 0])
    assert apgr(curve) == pytest.approx(0.5)
    for target in (0.2, 0.5, 0.8):
        assert cpt(curve, target) == pytest.approx(target)
    assert curve.accuracy_at(0.5) == pytest.approx(0.625)


def test_reversed_ranking_is_worse_than_random() -> None:
    weak = np.array([0, 1, 1, 0, 1, 1])
    strong = np.array([1, 1, 1, 1, 0, 1])
    gain = strong - weak
    assert apgr(router_curve(gain, weak, strong)) > 0.5
    assert apgr(router_curve(-gain, weak, strong)) < 0.5


def test_no_quality_gap_is_an_error_not_a_number() -> None:
    curve = router_curve([1, 2], [1, 0], [0, 1])
    with pytest.raises(ValueError, match="not more accurate"):
        apgr(curve)


@pytest.mark.parametrize(
    ("scores", "weak", "strong"),
    [([], [], []), ([1, 2], [1], [1, 1]), ([float("nan")], [0], [1]), ([[1]], [[0]], [[1]])],
)
def test_bad_inputs_are_rejected(scores: list[float], weak: list[int], strong: list[int]) -> None:
    with pytest.raises(ValueError, match=r"1-D|no rows|finite"):
        router_curve(scores, weak, strong)


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5])
def test_cpt_target_must_be_a_fraction(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        cpt(router_curve([1, 0], [0, 1], [1, 1]), target)
