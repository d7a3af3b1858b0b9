"""Offline training of the scorer (numpy only, closed form, deterministic).

Per segment (multiple-choice / free-form prompts) a ridge regression on standardised
features predicts the routing gain strong_correct - weak_correct, the quantity a
router should rank by. A one-dimensional logistic fit (Platt scaling) on out-of-fold
predictions then maps that linear score to P(weak wrong and strong right), so the
final model is an ordinary logistic model with a probability as its output. The
quantiles of each segment's training logits are stored so the scorer can turn a logit
into a within-family rank; the calibration is computed on those ranks after the prior
rules (`_rules`), i.e. on exactly what `ComplexityScorer.score` returns. Out-of-fold
scores (folds by prompt hash) feed the quality side of calibration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._calibration import build_calibration
from ._features import DEFAULT_MAX_CHARS, SEGMENTS, FeatureExtractor
from ._rules import InstructionRules, RuleMatch, apply_rule
from ._weights import ScorerWeights, Segment, rank_in

__all__ = ["TrainingOptions", "out_of_fold_scores", "train_scorer"]

FloatArray = npt.NDArray[np.float64]
_MIN_SLOPE = 1e-3
_RANK_POINTS = 201


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    l2: float = 10.0
    folds: int = 5
    clip: float = 5.0
    max_chars: int = DEFAULT_MAX_CHARS
    min_segment_rows: int = 50

    def __post_init__(self) -> None:
        if self.l2 <= 0 or self.clip <= 0:
            raise ValueError("l2 and clip must be > 0")
        if self.folds < 2 or self.max_chars < 1 or self.min_segment_rows < 2:
            raise ValueError("folds >= 2, max_chars >= 1 and min_segment_rows >= 2 required")


@dataclass(frozen=True, slots=True)
class _Data:
    dense: FloatArray
    segment: npt.NDArray[np.str_]
    weak: FloatArray
    strong: FloatArray
    gain: FloatArray
    needs: FloatArray
    fold: npt.NDArray[np.int64]
    rules: tuple[RuleMatch | None, ...]


def _fold_of(prompt: str, folds: int) -> int:
    digest = hashlib.sha256(b"airlock-router-fold\x00" + prompt.encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def _prepare(
    prompts: Sequence[str], weak: Sequence[int], strong: Sequence[int], opt: TrainingOptions
) -> _Data:
    if not (len(prompts) == len(weak) == len(strong)) or not prompts:
        raise ValueError("prompts, weak and strong must be non-empty and of one length")
    w = np.asarray(weak, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    if not (np.isin(w, (0.0, 1.0)).all() and np.isin(s, (0.0, 1.0)).all()):
        raise ValueError("weak and strong must be 0/1")
    extractor = FeatureExtractor(max_chars=opt.max_chars)
    feats = [extractor.extract(p) for p in prompts]
    rules = InstructionRules()
    return _Data(
        dense=np.asarray([f.dense for f in feats], dtype=np.float64),
        segment=np.asarray([f.segment for f in feats]),
        weak=w,
        strong=s,
        gain=s - w,
        needs=((w == 0.0) & (s == 1.0)).astype(np.float64),
        fold=np.asarray([_fold_of(p, opt.folds) for p in prompts], dtype=np.int64),
        rules=tuple(
            rules.match(p) if f.segment == SEGMENTS[1] else None
            for p, f in zip(prompts, feats, strict=True)
        ),
    )


@dataclass(frozen=True, slots=True)
class _Linear:
    intercept: float
    means: FloatArray
    scales: FloatArray
    coef: FloatArray

    def predict(self, dense: FloatArray, clip: float) -> FloatArray:
        z = np.clip((dense - self.means) / self.scales, -clip, clip)
        return np.asarray(self.intercept + z @ self.coef, dtype=np.float64)


def _ridge(dense: FloatArray, target: FloatArray, opt: TrainingOptions) -> _Linear:
    means = dense.mean(axis=0)
    scales = dense.std(axis=0)
    scales[scales < 1e-9] = 1.0  # a constant feature: any scale works, weight ends at 0
    z = np.clip((dense - means) / scales, -opt.clip, opt.clip)
    x = np.hstack([np.ones((z.shape[0], 1)), z])
    penalty = np.full(x.shape[1], opt.l2)
    penalty[0] = 0.0  # never shrink the intercept
    beta = np.linalg.solve(x.T @ x + np.diag(penalty), x.T @ target)
    return _Linear(float(beta[0]), means, scales, beta[1:].copy())


def _fit_segments(
    data: _Data, rows: npt.NDArray[np.bool_], opt: TrainingOptions
) -> dict[str, _Linear]:
    fallback = _ridge(data.dense[rows], data.gain[rows], opt)
    models: dict[str, _Linear] = {}
    for name in SEGMENTS:
        mask = rows & (data.segment == name)
        # Too few rows for their own weights: share the all-segment fit.
        few = int(mask.sum()) < opt.min_segment_rows
        models[name] = fallback if few else _ridge(data.dense[mask], data.gain[mask], opt)
    return models


def _predict(
    models: Mapping[str, _Linear], data: _Data, rows: npt.NDArray[np.bool_], clip: float
) -> FloatArray:
    out = np.zeros(int(rows.sum()))
    seg = data.segment[rows]
    dense = data.dense[rows]
    for name, model in models.items():
        mask = seg == name
        if mask.any():
            out[mask] = model.predict(dense[mask], clip)
    return out


def _platt(pred: FloatArray, label: FloatArray, slope: float | None = None) -> tuple[float, float]:
    """Fit P(label) = sigmoid(a * pred + b) by Newton's method; `slope` fixes a.

    A tiny ridge keeps the 2x2 system solvable when the labels are separable.
    """
    prior = float(np.clip(label.mean(), 1e-3, 1 - 1e-3))
    a = 0.0 if slope is None else slope
    b = float(np.log(prior / (1 - prior)))
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(a * pred + b)))
        r, h = p - label, p * (1 - p)
        if slope is None:
            grad = np.array([r @ pred + 1e-6 * a, r.sum() + 1e-6 * b])
            hess = np.array([[h @ (pred * pred), h @ pred], [h @ pred, h.sum()]]) + 1e-6 * np.eye(2)
            da, db = np.linalg.solve(hess, grad)
        else:
            da, db = 0.0, float(r.sum()) / (float(h.sum()) + 1e-6)
        a, b = a - float(da), b - float(db)
        if max(abs(da), abs(db)) < 1e-10:
            break
    return a, b


def _oof_linear(data: _Data, opt: TrainingOptions) -> FloatArray:
    oof = np.zeros(data.gain.size)
    for k in range(opt.folds):
        held = data.fold == k
        if not held.any():
            continue
        if held.all():
            raise ValueError("too few distinct prompts for the number of folds")
        oof[held] = _predict(_fit_segments(data, ~held, opt), data, held, opt.clip)
    return oof


def _calibrators(data: _Data, oof: FloatArray) -> dict[str, tuple[float, float]]:
    result: dict[str, tuple[float, float]] = {}
    everything = _platt(oof, data.needs)
    for name in SEGMENTS:
        mask = data.segment == name
        labels = data.needs[mask]
        usable = mask.sum() >= 2 and 0.0 < labels.mean() < 1.0
        slope, offset = _platt(oof[mask], labels) if usable else everything
        if slope < _MIN_SLOPE:
            # Platt scaling may rescale the ranking, never flip it: fix a small positive
            # slope and refit only the offset.
            slope, offset = _platt(oof[mask], labels, _MIN_SLOPE) if usable else everything
        result[name] = (max(slope, _MIN_SLOPE), offset)
    return result


def _rank_quantiles(logits: FloatArray, data: _Data) -> dict[str, FloatArray]:
    """Per segment, quantiles of its rows' logits (all rows' for an empty segment)."""
    levels = np.linspace(0.0, 1.0, _RANK_POINTS)
    out: dict[str, FloatArray] = {}
    for name in SEGMENTS:
        mask = data.segment == name
        values = logits[mask] if mask.any() else logits
        out[name] = np.asarray(np.quantile(values, levels), dtype=np.float64)
    return out


def _routing_scores(logits: FloatArray, data: _Data) -> FloatArray:
    """What the scorer returns for each row: within-segment rank, then the prior rules."""
    quantiles = _rank_quantiles(logits, data)
    ranks = np.empty_like(logits)
    for name, q in quantiles.items():
        mask = data.segment == name
        ranks[mask] = rank_in(logits[mask], q)
    return np.asarray([apply_rule(float(r), m) for r, m in zip(ranks, data.rules, strict=True)])


def out_of_fold_scores(
    prompts: Sequence[str],
    weak: Sequence[int],
    strong: Sequence[int],
    options: TrainingOptions | None = None,
) -> FloatArray:
    """Cross-validated linear scores: each prompt scored by a model that never saw it."""
    opt = options or TrainingOptions()
    return _oof_linear(_prepare(prompts, weak, strong, opt), opt)


def train_scorer(
    prompts: Sequence[str],
    weak: Sequence[int],
    strong: Sequence[int],
    options: TrainingOptions | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ScorerWeights:
    """Fit on all rows given; calibrate on them (the quality curve out-of-fold)."""
    opt = options or TrainingOptions()
    data = _prepare(prompts, weak, strong, opt)
    if data.needs.min() == data.needs.max():
        raise ValueError("no variation in 'weak wrong and strong right': nothing to learn")
    oof = _oof_linear(data, opt)
    platt = _calibrators(data, oof)
    everything = np.ones(data.gain.size, dtype=bool)
    models = _fit_segments(data, everything, opt)
    segments = {
        name: Segment(
            intercept=platt[name][0] * model.intercept + platt[name][1],
            means=model.means,
            scales=model.scales,
            coef=platt[name][0] * model.coef,
            rank_logits=np.zeros(2),  # filled in below, from these very weights
        )
        for name, model in models.items()
    }
    final_logit = _predict(
        {n: _Linear(s.intercept, s.means, s.scales, s.coef) for n, s in segments.items()},
        data,
        everything,
        opt.clip,
    )
    ranks = _rank_quantiles(final_logit, data)
    segments = {
        n: Segment(s.intercept, s.means, s.scales, s.coef, ranks[n]) for n, s in segments.items()
    }
    oof_logit = np.array(
        [platt[seg][0] * v + platt[seg][1] for seg, v in zip(data.segment, oof, strict=True)]
    )
    info: dict[str, Any] = dict(metadata or {})
    info["options"] = asdict(opt)
    info["rows"] = int(data.gain.size)
    info["segment_rows"] = {n: int((data.segment == n).sum()) for n in SEGMENTS}
    info["target"] = "ridge on strong - weak, Platt-scaled to P(weak wrong and strong right)"
    info["score"] = "rank of the logit within its segment's training prompts, then prior rules"
    info["rule_rows"] = {
        label: sum(1 for m in data.rules if m is not None and m.label == label)
        for label in sorted({m.label for m in data.rules if m is not None})
    }
    return ScorerWeights(
        segments=segments,
        max_chars=opt.max_chars,
        clip=opt.clip,
        calibration=build_calibration(
            _routing_scores(final_logit, data),
            _routing_scores(oof_logit, data),
            data.weak,
            data.strong,
        ),
        metadata=info,
    )
