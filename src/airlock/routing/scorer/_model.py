"""`ComplexityScorer`: how much a prompt needs the strong model, as a rank in [0, 1].

Three steps. (1) The segment's logistic model gives a logit, i.e. P(weak wrong and
strong right) learned from data. (2) The logit becomes the prompt's rank within its
family (multiple-choice or free-form) on the training prompts, so one threshold
sends the same share of every family to the strong model: `strong_share` holds per
family instead of being spent on whichever family has higher raw probabilities.
(3) For free-form prompts, the prior layer (`_rules`) squeezes that rank into a low
band for instruction types the data cannot teach but any model handles (greetings,
extraction, classification, summarisation, translation, reformatting) or a high band
for proofs, code, design and analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._calibration import Calibration
from ._features import DENSE_FEATURES, SEGMENTS, FeatureExtractor
from ._rules import InstructionRules, apply_rule
from ._weights import ScorerWeights, Segment, load_weights

__all__ = ["PACKAGED_WEIGHTS", "ComplexityScorer", "ScoreDetail"]

_FREE_FORM = SEGMENTS[1]

PACKAGED_WEIGHTS = "weights.json"


def _sigmoid(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class ScoreDetail:
    """Every step of one score: numbers and rule names only, nothing of the prompt."""

    segment: str
    logit: float
    probability: float  # sigmoid(logit): learned P(weak wrong and strong right)
    rank: float  # share of the family's training prompts with a lower logit
    rule: str | None  # prior rule that fired ("simple:summarise", "complex:proof")
    score: float


class ComplexityScorer:
    """Scores prompts with a small linear model; build once at start-up and share.

    The score is the prompt's rank, within its family, of the learned P(the weak model
    fails where the strong one succeeds), adjusted by the prior rules for free-form
    instructions (see the module docstring). Nothing is mutated after construction, so
    one instance serves every thread. No network, no model call.
    """

    __slots__ = ("_extractor", "_rules", "_weights")

    def __init__(self, weights: ScorerWeights) -> None:
        self._weights = weights
        self._extractor = FeatureExtractor(max_chars=weights.max_chars)
        self._rules = InstructionRules()

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

    def probability(self, text: str) -> float:
        """The learned P(weak wrong and strong right) = sigmoid(logit), before ranking."""
        return _sigmoid(self.logit(text))

    def detail(self, text: str) -> ScoreDetail:
        segment, name, parts = self._contributions(text)
        logit = segment.intercept + float(parts.sum())
        rank = segment.rank(logit)
        rule = self._rules.match(text) if name == _FREE_FORM else None
        return ScoreDetail(
            segment=name,
            logit=logit,
            probability=_sigmoid(logit),
            rank=rank,
            rule=rule.label if rule is not None else None,
            score=apply_rule(rank, rule),
        )

    def score(self, text: str) -> float:
        """Need for the strong model in [0, 1]: the within-family rank, rule-adjusted."""
        return self.detail(text).score

    def threshold_for_strong_share(self, share: float) -> float:
        """Score threshold that sends about `share` of each family's traffic to strong."""
        return self._weights.calibration.threshold_for_share(share)

    def threshold_for_quality(self, target_pgr: float) -> float:
        """Threshold reaching `target_pgr` of the weak→strong quality gap (training data)."""
        return self._weights.calibration.threshold_for_quality(target_pgr)

    def explain(self, text: str) -> list[tuple[str, float]]:
        """Why a prompt got its score: contributions to the logit, largest first.

        The first entry is `bias:<segment>` (the segment's intercept); the rest are
        `DENSE_FEATURES` names. Their sum is the logit (probability = sigmoid(logit));
        `detail` shows how the logit became the score. Names and numbers only: nothing
        of the prompt's text is returned.
        """
        segment, name, parts = self._contributions(text)
        ranked = sorted(
            ((feature, float(c)) for feature, c in zip(DENSE_FEATURES, parts, strict=True)),
            key=lambda item: (-abs(item[1]), item[0]),
        )
        return [(f"bias:{name}", segment.intercept), *ranked]
