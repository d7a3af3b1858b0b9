"""Quality/cost metrics of a two-model router (RouteLLM's CPT and APGR).

A router ranks prompts by score; sending the top share s to the strong model and the
rest to the weak one gives an accuracy a(s). PGR(s) = (a(s) - a_weak) / (a_strong -
a_weak) is the share of the quality gap recovered. APGR is the area under PGR over
s in [0, 1]; CPT(x) is the smallest strong share whose PGR reaches x. We use the full
curve (one point per distinct score, ties routed together) rather than RouteLLM's ten
quantile bins, and find CPT on the piecewise-linear curve's first crossing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "RouterCurve",
    "apgr",
    "cpt",
    "expected_random_curve",
    "router_curve",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RouterCurve:
    """Accuracy against share of strong calls; `share` rises from 0 to 1."""

    share: FloatArray
    accuracy: FloatArray
    weak_accuracy: float
    strong_accuracy: float

    @property
    def gap(self) -> float:
        return self.strong_accuracy - self.weak_accuracy

    @property
    def pgr(self) -> FloatArray:
        """Performance gap recovered at each point; undefined (ValueError) without a gap."""
        if self.gap <= 0.0:
            raise ValueError("the strong model is not more accurate than the weak one")
        return (self.accuracy - self.weak_accuracy) / self.gap

    def accuracy_at(self, share: float) -> float:
        return float(np.interp(share, self.share, self.accuracy))


def _check(
    scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    g = np.asarray(strong, dtype=np.float64)
    if s.ndim != 1 or s.shape != w.shape or s.shape != g.shape:
        raise ValueError("scores, weak and strong must be 1-D arrays of one length")
    if s.size == 0:
        raise ValueError("no rows to evaluate")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, w, g


def router_curve(scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike) -> RouterCurve:
    """The exact curve: one point per distinct score value (ties move together)."""
    s, w, g = _check(scores, weak, strong)
    n = s.size
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    gain = np.cumsum(g[order] - w[order])
    # Cut only where the score changes, so tied prompts are never split arbitrarily.
    last_of_tie = np.flatnonzero(np.diff(sorted_scores) != 0.0)
    ends = np.concatenate([last_of_tie, [n - 1]])
    share = np.concatenate([[0.0], (ends + 1) / n])
    weak_total = float(w.sum())
    accuracy = np.concatenate([[weak_total / n], (weak_total + gain[ends]) / n])
    return RouterCurve(
        share=share,
        accuracy=accuracy,
        weak_accuracy=weak_total / n,
        strong_accuracy=float(g.sum()) / n,
    )


def expected_random_curve(weak: npt.ArrayLike, strong: npt.ArrayLike) -> RouterCurve:
    """A random router's expected curve: the straight line from weak to strong."""
    w = np.asarray(weak, dtype=np.float64)
    g = np.asarray(strong, dtype=np.float64)
    if w.size == 0 or w.shape != g.shape:
        raise ValueError("weak and strong must be non-empty arrays of one length")
    a_w, a_s = float(w.mean()), float(g.mean())
    return RouterCurve(
        share=np.array([0.0, 1.0]),
        accuracy=np.array([a_w, a_s]),
        weak_accuracy=a_w,
        strong_accuracy=a_s,
    )


def apgr(curve: RouterCurve) -> float:
    """Area under PGR(share) on [0, 1] (trapezoids on the exact curve)."""
    pgr = curve.pgr
    widths = np.diff(curve.share)
    return float(np.sum(widths * (pgr[1:] + pgr[:-1]) / 2.0))


def cpt(curve: RouterCurve, target: float) -> float:
    """Smallest strong share at which PGR first reaches `target` (0 < target <= 1)."""
    if not 0.0 < target <= 1.0:
        raise ValueError("target must be in (0, 1]")
    pgr = curve.pgr
    reached = np.flatnonzero(pgr >= target - 1e-12)
    k = int(reached[0])  # always exists: PGR is exactly 1 at share 1
    if k == 0:
        return 0.0
    x0, x1 = curve.share[k - 1], curve.share[k]
    y0, y1 = pgr[k - 1], pgr[k]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))
