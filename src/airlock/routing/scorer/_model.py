"""`ComplexityScorer`: the estimated need for the strong model, in [0, 1]."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._calibration import Calibration
from ._features import DENSE_FEATURES, FeatureExtractor
from ._weights import ScorerWeights, Segment, load_weights

__all__ = ["PACKAGED_WEIGHTS", "ComplexityScorer"]

PACKAGED_WEIGHTS = "weights.json"


def _sigmoid(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class ComplexityScorer:
    """Scores prompts with a small linear model; build once at start-up and share.

    The score estimates P(the weak model fails where the strong one succeeds), learned
    from RouteLLM-format data. Nothing is mutated after construction, so one instance
    serves every thread. No network, no model call.
    """

    __slots__ = ("_extractor", "_weights")

    def __init__(self, weights: ScorerWeights) -> None:
        self._weights = weights
        self._extractor = FeatureExtractor(max_chars=weights.max_chars)

    @classmethod
    def load(cls, path: Path | None = None) -> ComplexityScorer:
        """Load a weight file, or the weights shipped in this package when `path` is None."""
        if path is not None:
            return cls(load_weights(path))
        packaged = resources.files(__package__).joinpath(PACKAGED_WEIGHTS)
        with resources.as_file(packaged) as real_path:
            return cls(load_weights(real_path))

    @property
    def weights(self) -> ScorerWeights:
        return self._weights

    @property
    def calibration(self) -> Calibration:
        return self._weights.calibration

    def _contributions(self, text: str) -> tuple[Segment, str, npt.NDArray[np.float64]]:
        features = self._extractor.extract(text)
        name = features.segment
        segment = self._weights.segments[name]
        z = (np.asarray(features.dense) - segment.means) / segment.scales
        np.clip(z, -self._weights.clip, self._weights.clip, out=z)
        return segment, name, z * segment.coef

    def logit(self, text: str) -> float:
        segment, _, parts = self._contributions(text)
        return segment.intercept + float(parts.sum())

    def score(self, text: str) -> float:
        """Estimated need for the strong model, in [0, 1]."""
        return _sigmoid(self.logit(text))

    def threshold_for_strong_share(self, share: float) -> float:
        """Score threshold that sends about `share` of (training-like) traffic to strong."""
        return self._weights.calibration.threshold_for_share(share)

    def threshold_for_quality(self, target_pgr: float) -> float:
        """Threshold reaching `target_pgr` of the weak→strong quality gap (training data)."""
        return self._weights.calibration.threshold_for_quality(target_pgr)

    def explain(self, text: str) -> list[tuple[str, float]]:
        """Why a prompt got its score: contributions to the logit, largest first.

        The first entry is `bias:<segment>` (the segment's intercept); the rest are
        `DENSE_FEATURES` names. Their sum is the logit, and score = sigmoid(logit).
        Names and numbers only: nothing of the prompt's text is returned.
        """
        segment, name, parts = self._contributions(text)
        ranked = sorted(
            ((feature, float(c)) for feature, c in zip(DENSE_FEATURES, parts, strict=True)),
            key=lambda item: (-abs(item[1]), item[0]),
        )
        return [(f"bias:{name}", segment.intercept), *ranked]
