"""The complexity scorer: a cheap, learned estimate that a prompt needs the strong model."""

from ._calibration import Calibration, build_calibration
from ._features import DEFAULT_MAX_CHARS, DENSE_FEATURES, SEGMENTS, FeatureExtractor, PromptFeatures
from ._model import PACKAGED_WEIGHTS, ComplexityScorer, ScoreDetail
from ._rules import COMPLEX_FLOOR, SIMPLE_CEILING, InstructionRules, RuleMatch
from ._train import TrainingOptions, out_of_fold_scores, train_scorer
from ._weights import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ScorerWeights,
    Segment,
    WeightsFileError,
    dump_weights,
    load_weights,
    weights_from_dict,
)

__all__ = [
    "COMPLEX_FLOOR",
    "DEFAULT_MAX_CHARS",
    "DENSE_FEATURES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "PACKAGED_WEIGHTS",
    "SEGMENTS",
    "SIMPLE_CEILING",
    "Calibration",
    "ComplexityScorer",
    "FeatureExtractor",
    "InstructionRules",
    "PromptFeatures",
    "RuleMatch",
    "ScoreDetail",
    "ScorerWeights",
    "Segment",
    "TrainingOptions",
    "WeightsFileError",
    "build_calibration",
    "dump_weights",
    "load_weights",
    "out_of_fold_scores",
    "train_scorer",
    "weights_from_dict",
]
