"""Turning a policy target (share of strong calls, or quality) into a score threshold.

Thresholds come from the deployed model's score distribution on its training split;
the quality curve comes from out-of-fold scores on that split, so `threshold_for_quality`
does not trust the model's view of its own training rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Calibration", "build_calibration"]

_QUANTILE_POINTS = 201
_CURVE_POINTS = 101


@dataclass(frozen=True, slots=True)
class Calibration:
    """Score quantiles and the (out-of-fold) PGR curve, both on a fixed grid.

    `score_quantiles[i]` is the i/(n-1) quantile of training scores; `pgr[j]` is the
    share of the weak→strong quality gap recovered when the top j/(m-1) of prompts go
    to the strong model.
    """

    score_quantiles: tuple[float, ...]
    pgr: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.score_quantiles) < 2 or len(self.pgr) < 2:
            raise ValueError("calibration needs at least two quantiles and two curve points")
        values = np.asarray(self.score_quantiles)
        if not np.all(np.isfinite(values)) or np.any(np.diff(values) < 0):
            raise ValueError("score quantiles must be finite and non-decreasing")
        if not np.all(np.isfinite(np.asarray(self.pgr))):
            raise ValueError("calibration curve must be finite")

    def threshold_for_share(self, share: float) -> float:
        """Score threshold so that about `share` of prompts score >= it (strong calls).

        share 0 gives +inf (never strong); share 1 gives -inf (always strong).
        """
        if not 0.0 <= share <= 1.0 or math.isnan(share):
            raise ValueError("strong share must be between 0 and 1")
        if share == 0.0:
            return math.inf
        if share == 1.0:
            return -math.inf
        levels = np.linspace(0.0, 1.0, len(self.score_quantiles))
        return float(np.interp(1.0 - share, levels, np.asarray(self.score_quantiles)))

    def share_for_quality(self, target_pgr: float) -> float:
        """Smallest strong share whose (out-of-fold) PGR reached `target_pgr` in training."""
        if not 0.0 < target_pgr <= 1.0:
            raise ValueError("quality target (share of the gap recovered) must be in (0, 1]")
        shares = np.linspace(0.0, 1.0, len(self.pgr))
        pgr = np.asarray(self.pgr)
        reached = np.flatnonzero(pgr >= target_pgr)
        if reached.size == 0:
            return 1.0
        k = int(reached[0])
        if k == 0:
            return 0.0
        x0, x1, y0, y1 = shares[k - 1], shares[k], pgr[k - 1], pgr[k]
        return float(x0 + (target_pgr - y0) / (y1 - y0) * (x1 - x0))

    def threshold_for_quality(self, target_pgr: float) -> float:
        return self.threshold_for_share(self.share_for_quality(target_pgr))

    def to_dict(self) -> dict[str, list[float]]:
        return {"score_quantiles": list(self.score_quantiles), "pgr": list(self.pgr)}


def build_calibration(
    scores: npt.ArrayLike,
    oof_scores: npt.ArrayLike,
    weak: npt.ArrayLike,
    strong: npt.ArrayLike,
) -> Calibration:
    """Quantiles of `scores` (deployed model) and the PGR curve of `oof_scores`."""
    s = np.asarray(scores, dtype=np.float64)
    oof = np.asarray(oof_scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    g = np.asarray(strong, dtype=np.float64)
    if s.size == 0 or not (s.shape == oof.shape == w.shape == g.shape):
        raise ValueError("scores, out-of-fold scores and labels must have one length")
    gap = float(g.mean() - w.mean())
    if gap <= 0.0:
        raise ValueError("the strong model is not more accurate than the weak one here")
    quantiles = np.quantile(s, np.linspace(0.0, 1.0, _QUANTILE_POINTS))
    order = np.argsort(-oof, kind="stable")
    gained = np.concatenate([[0.0], np.cumsum(g[order] - w[order])]) / s.size
    counts = np.linspace(0.0, 1.0, _CURVE_POINTS) * s.size
    # Interpolating the cumulative gain at fractional counts gives the curve on the grid.
    pgr = np.interp(counts, np.arange(s.size + 1), gained) / gap
    return Calibration(
        score_quantiles=tuple(float(q) for q in quantiles),
        pgr=tuple(float(p) for p in pgr),
    )
