import numpy as np
import pytest

from airlock.routing.evaluation import apgr, router_curve
from airlock.routing.scorer import (
    SEGMENTS,
    ComplexityScorer,
    TrainingOptions,
    out_of_fold_scores,
    train_scorer,
)
from airlock.routing.scorer._weights import rank_in
from tests.routing.synthetic import synthetic_rows


def _columns(n: int = 120) -> tuple[list[str], list[int], list[int]]:
    rows = synthetic_rows(n)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def test_training_learns_which_prompts_need_the_strong_model() -> None:
    prompts, weak, strong = _columns()
    weights = train_scorer(prompts, weak, strong, metadata={"note": "synthetic"})
    scorer = ComplexityScorer(weights)
    need = [scorer.score(p) for p, w, s in zip(prompts, weak, strong, strict=True) if w < s]
    fine = [scorer.score(p) for p, w, s in zip(prompts, weak, strong, strict=True) if w == s]
    assert min(need) >= 0.0
    assert max(fine) <= 1.0
    assert np.mean(need) > np.mean(fine) + 0.3
    # Scores are ranks within a segment, so the ranking is judged inside each segment
    # (across segments an equal share goes strong by design).
    for segment in SEGMENTS:
        rows = [i for i, p in enumerate(prompts) if scorer.detail(p).segment == segment]
        w, s = np.take(weak, rows), np.take(strong, rows)
        best = apgr(router_curve(s - w, w, s))  # the oracle, on separable data
        assert apgr(router_curve([scorer.score(prompts[i]) for i in rows], w, s)) > 0.95 * best
    assert weights.metadata["note"] == "synthetic"
    assert weights.metadata["rows"] == len(prompts)
    assert weights.metadata["segment_rows"] == {"multiple_choice": 60, "free_form": 60}


def test_strong_share_holds_in_every_segment() -> None:
    prompts, weak, strong = _columns(300)
    # A lead-in of varying length gives each template many distinct logits: with only a
    # handful (the bare templates), a share can be met only to within a tie block.
    prompts = [f"(ref {'z' * (7 * i % 23)} {i}) {p}" for i, p in enumerate(prompts)]
    scorer = ComplexityScorer(train_scorer(prompts, weak, strong))
    details = [scorer.detail(p) for p in prompts]
    for share in (0.2, 0.5):
        threshold = scorer.threshold_for_strong_share(share)
        for segment in SEGMENTS:
            sent = [d.score >= threshold for d in details if d.segment == segment]
            assert abs(np.mean(sent) - share) < 0.1, (share, segment, np.mean(sent))


def test_prompts_that_tie_share_the_middle_rank_of_their_tie() -> None:
    prompts, weak, strong = _columns(300)
    scorer = ComplexityScorer(train_scorer(prompts, weak, strong))
    for segment in SEGMENTS:
        details = [scorer.detail(p) for p in prompts]
        ranks = sorted({d.rank for d in details if d.segment == segment})
        # The lowest tie block starts at rank 0: its middle is above 0 and below its top.
        assert 0.0 < ranks[0] < 0.5
    # Ranks of values between, below and above the quantiles.
    quantiles = np.array([1.0, 2.0, 2.0, 2.0, 3.0])
    got = rank_in([0.0, 1.0, 1.5, 2.0, 2.0 + 1e-12, 2.5, 3.0, 9.0], quantiles)
    assert got.tolist() == [0.0, 0.0, 0.125, 0.5, 0.5, 0.875, 1.0, 1.0]


def test_out_of_fold_scores_rank_better_than_random() -> None:
    prompts, weak, strong = _columns()
    oof = out_of_fold_scores(prompts, weak, strong)
    assert oof.shape == (len(prompts),)
    assert apgr(router_curve(oof, weak, strong)) > 0.65  # random: 0.5, oracle: 0.78


def test_training_is_deterministic() -> None:
    prompts, weak, strong = _columns(60)
    first = train_scorer(prompts, weak, strong).to_dict()
    second = train_scorer(prompts, weak, strong).to_dict()
    assert first == second


def test_small_segments_share_the_global_fit() -> None:
    prompts, weak, strong = _columns(40)  # 20 rows per segment, under min_segment_rows
    weights = train_scorer(prompts, weak, strong, TrainingOptions(min_segment_rows=50))
    mc, ff = weights.segments["multiple_choice"], weights.segments["free_form"]
    assert np.array_equal(mc.means, ff.means)


def test_bad_training_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="one length"):
        train_scorer(["a", "b"], [0], [1, 1])
    with pytest.raises(ValueError, match="0/1"):
        train_scorer(["a", "b"], [0, 2], [1, 1])
    with pytest.raises(ValueError, match="nothing to learn"):
        train_scorer([f"p{i}" for i in range(10)], [1] * 10, [1] * 10)
    with pytest.raises(ValueError, match="folds"):
        TrainingOptions(folds=1)
