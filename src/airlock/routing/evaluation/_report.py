"""Evaluate routers on RouteLLM-format rows: per subset, scorer beside the baselines."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._data import RoutingRow
from ._metrics import RouterCurve, apgr, cpt, expected_random_curve, router_curve

__all__ = [
    "LENGTH_ROUTER",
    "ORACLE_ROUTER",
    "PUBLISHED_ROUTELLM",
    "RANDOM_ROUTER",
    "RouterMetrics",
    "SubsetReport",
    "evaluate_routers",
    "render_text",
    "reports_to_dict",
]

RANDOM_ROUTER = "random (expected)"
LENGTH_ROUTER = "prompt length"
ORACLE_ROUTER = "oracle"
_RANDOM_DRAWS = 200

# From the data's NOTICE: "N x cheaper at Q of GPT-4 quality" at CPT(50%). A random
# router needs 50% strong calls for 50% of the gap, so N x cheaper means CPT(50%) = 50%/N.
PUBLISHED_ROUTELLM: Mapping[str, Mapping[str, float]] = {
    "mmlu": {"cheaper_than_random": 1.41, "cpt50": 0.5 / 1.41, "quality_vs_strong": 0.92},
    "gsm8k": {"cheaper_than_random": 1.49, "cpt50": 0.5 / 1.49, "quality_vs_strong": 0.87},
}

Scorer = Callable[[str], float]


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    name: str
    apgr: float
    cpt50: float
    cpt80: float
    curve: RouterCurve

    @property
    def cheaper_than_random(self) -> float:
        """Random router's CPT(50%) (=50%) over ours: RouteLLM's "N x cheaper"."""
        return 0.5 / self.cpt50 if self.cpt50 > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class SubsetReport:
    subset: str
    rows: int
    weak_accuracy: float
    strong_accuracy: float
    routers: tuple[RouterMetrics, ...]
    random_apgr_95: tuple[float, float]

    @property
    def quality_at_cpt50(self) -> float:
        """Accuracy at 50% of the gap, as a share of the strong model's accuracy."""
        return (self.weak_accuracy + self.strong_accuracy) / 2.0 / self.strong_accuracy


def _metrics(name: str, curve: RouterCurve) -> RouterMetrics:
    return RouterMetrics(name, apgr(curve), cpt(curve, 0.5), cpt(curve, 0.8), curve)


def _random_interval(weak: np.ndarray, strong: np.ndarray) -> tuple[float, float]:
    """Spread of a real random router's APGR (fixed seed), to judge small subsets."""
    rng = np.random.default_rng(0)
    draws = [apgr(router_curve(rng.random(weak.size), weak, strong)) for _ in range(_RANDOM_DRAWS)]
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def _subset(
    name: str, rows: Sequence[RoutingRow], scores: Mapping[str, np.ndarray], index: np.ndarray
) -> SubsetReport | None:
    weak = np.asarray([rows[i].weak_correct for i in index], dtype=np.float64)
    strong = np.asarray([rows[i].strong_correct for i in index], dtype=np.float64)
    if strong.mean() <= weak.mean():
        return None  # no quality gap: CPT and APGR are undefined here
    routers = [
        _metrics(router, router_curve(s[index], weak, strong)) for router, s in scores.items()
    ]
    routers.append(_metrics(RANDOM_ROUTER, expected_random_curve(weak, strong)))
    routers.append(_metrics(ORACLE_ROUTER, router_curve(strong - weak, weak, strong)))
    return SubsetReport(
        subset=name,
        rows=int(index.size),
        weak_accuracy=float(weak.mean()),
        strong_accuracy=float(strong.mean()),
        routers=tuple(routers),
        random_apgr_95=_random_interval(weak, strong),
    )


def evaluate_routers(
    rows: Sequence[RoutingRow], scorers: Mapping[str, Scorer]
) -> list[SubsetReport]:
    """Score every row once per scorer; report `all` and each source family.

    The prompt-length baseline (longer = send to strong), the random router's expected
    curve and the oracle are always added. Subsets without a quality gap are skipped.
    """
    if not rows:
        raise ValueError("no rows to evaluate")
    scores = {
        name: np.asarray([fn(r.prompt) for r in rows], dtype=np.float64)
        for name, fn in scorers.items()
    }
    scores[LENGTH_ROUTER] = np.asarray([len(r.prompt) for r in rows], dtype=np.float64)
    families = sorted({r.family for r in rows})
    subsets = [("all", np.arange(len(rows)))]
    if len(families) > 1:
        subsets += [(f, np.flatnonzero([r.family == f for r in rows])) for f in families]
    reports = [_subset(name, rows, scores, index) for name, index in subsets]
    return [r for r in reports if r is not None]


def reports_to_dict(reports: Sequence[SubsetReport]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rep in reports:
        out[rep.subset] = {
            "rows": rep.rows,
            "weak_accuracy": rep.weak_accuracy,
            "strong_accuracy": rep.strong_accuracy,
            "quality_vs_strong_at_cpt50": rep.quality_at_cpt50,
            "random_apgr_95": list(rep.random_apgr_95),
            "routers": {
                m.name: {
                    "apgr": m.apgr,
                    "cpt50": m.cpt50,
                    "cpt80": m.cpt80,
                    "cheaper_than_random_at_cpt50": m.cheaper_than_random,
                    "curve": {
                        "strong_share": [round(float(x), 6) for x in m.curve.share],
                        "accuracy": [round(float(y), 6) for y in m.curve.accuracy],
                    },
                }
                for m in rep.routers
            },
            "published_routellm": dict(PUBLISHED_ROUTELLM.get(rep.subset, {})) or None,
        }
    return out


def render_text(reports: Sequence[SubsetReport]) -> str:
    lines: list[str] = []
    for rep in reports:
        lines.append(
            f"== {rep.subset}: {rep.rows} rows, weak {rep.weak_accuracy:.1%}, strong "
            f"{rep.strong_accuracy:.1%}; 50% of the gap = {rep.quality_at_cpt50:.1%} of strong"
        )
        lines.append(f"{'router':<22}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}{'x cheaper':>11}")
        for m in rep.routers:
            lines.append(
                f"{m.name:<22}{m.apgr:>8.3f}{m.cpt50:>10.1%}{m.cpt80:>10.1%}"
                f"{m.cheaper_than_random:>10.2f}x"
            )
        pub = PUBLISHED_ROUTELLM.get(rep.subset)
        if pub is not None:
            lines.append(
                f"{'RouteLLM (published)':<22}{'-':>8}{pub['cpt50']:>10.1%}{'-':>10}"
                f"{pub['cheaper_than_random']:>10.2f}x"
            )
        low, high = rep.random_apgr_95
        lines.append(
            f"(a random router's APGR falls in [{low:.3f}, {high:.3f}] 95% of the time "
            "on these rows)"
        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
