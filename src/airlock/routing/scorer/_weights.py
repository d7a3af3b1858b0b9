"""The scorer's weight file: a JSON document produced by `airlock train-router`.

Two linear segments (multiple-choice prompts and free-form prompts), each a logistic
model over standardised dense features plus the quantiles of its training prompts'
logits (which turn a logit into the prompt's rank within its family). Loading
validates everything once at start-up and raises `WeightsFileError` naming the file
and the bad field; the hot path then trusts the arrays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from airlock.errors import InternalServerError

from ._calibration import Calibration
from ._features import DENSE_FEATURES, SEGMENTS

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ScorerWeights",
    "Segment",
    "WeightsFileError",
    "dump_weights",
    "load_weights",
    "rank_in",
    "weights_from_dict",
]

FORMAT_NAME = "airlock-complexity-scorer"
FORMAT_VERSION = 2


_TIE_TOLERANCE = 1e-9


def rank_in(
    values: npt.ArrayLike,
    quantiles: npt.NDArray[np.float64],
    levels: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """The rank in [0, 1] of each value among ``quantiles`` (sorted, on an even grid).

    Between two distinct quantiles the rank is interpolated. A value equal to a run of
    tied quantiles (many training prompts share one logit: short greetings, one
    template) gets the middle of the run: ``np.interp`` leaves ties undefined, and its
    choice, the top of the run, differs between builds and ranked every tied prompt as
    the hardest of its kind.
    """
    x = np.asarray(values, dtype=np.float64)
    if levels is None:
        levels = np.linspace(0.0, 1.0, quantiles.size)
    # A logit computed one prompt at a time differs in its last bits from the same
    # logit computed in the training batch; within this it counts as tied.
    tol = _TIE_TOLERANCE * np.maximum(1.0, np.abs(x))
    lo = np.searchsorted(quantiles, x - tol, side="left")
    hi = np.searchsorted(quantiles, x + tol, side="right")
    last = quantiles.size - 1
    left = np.clip(lo - 1, 0, last)
    right = np.clip(lo, 0, last)
    span = quantiles[right] - quantiles[left]
    step = np.divide(x - quantiles[left], span, out=np.zeros_like(x), where=span > 0)
    between = levels[left] + np.clip(step, 0.0, 1.0) * (levels[right] - levels[left])
    tied = (levels[np.clip(lo, 0, last)] + levels[np.clip(hi - 1, 0, last)]) / 2
    return np.where(hi > lo, tied, between)


class WeightsFileError(InternalServerError):
    """A scorer weight file is missing, not JSON, or does not match the format."""

    default_code = "invalid_scorer_weights"


@dataclass(frozen=True, slots=True)
class Segment:
    """logit = intercept + sum(coef * clip((x - means) / scales, ±clip)).

    `rank_logits[i]` is the i/(n-1) quantile of the logits of this segment's training
    prompts: interpolating a logit in it gives the prompt's rank within its family.
    """

    intercept: float
    means: npt.NDArray[np.float64]
    scales: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    rank_logits: npt.NDArray[np.float64]
    _levels: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once: the hot path only looks up and interpolates.
        object.__setattr__(self, "_levels", np.linspace(0.0, 1.0, self.rank_logits.size))

    def rank(self, logit: float) -> float:
        """Share of this segment's training prompts with a lower logit, in [0, 1]
        (ties counted half)."""
        return float(rank_in(logit, self.rank_logits, self._levels))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "features": [
                {"name": name, "mean": float(m), "scale": float(s), "weight": float(w)}
                for name, m, s, w in zip(
                    DENSE_FEATURES, self.means, self.scales, self.coef, strict=True
                )
            ],
            "rank_logits": [float(v) for v in self.rank_logits],
        }


@dataclass(frozen=True, slots=True)
class ScorerWeights:
    segments: Mapping[str, Segment]
    max_chars: int
    clip: float
    calibration: Calibration
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "model": "segmented-logistic",
            "max_chars": self.max_chars,
            "clip": self.clip,
            "segments": {name: self.segments[name].to_dict() for name in SEGMENTS},
            "calibration": self.calibration.to_dict(),
            "metadata": dict(self.metadata),
        }


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number")
    return float(value)


def _numbers(value: object, where: str) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of numbers")
    return tuple(_number(item, f"{where}[{i}]") for i, item in enumerate(value))


def _segment(doc: object, where: str) -> Segment:
    if not isinstance(doc, dict):
        raise ValueError(f"{where} must be an object")
    features = doc.get("features")
    if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
        raise ValueError(f"{where}.features must be a list of objects")
    names = [str(f.get("name")) for f in features]
    if names != list(DENSE_FEATURES):
        unknown = sorted(set(names) - set(DENSE_FEATURES)) or "none"
        absent = sorted(set(DENSE_FEATURES) - set(names)) or "none"
        raise ValueError(
            f"{where}.features do not match this airlock's feature set "
            f"(unknown: {unknown}; missing: {absent}; order must match)"
        )
    at = f"{where}.features"
    means = [_number(f.get("mean"), f"{at}[{i}].mean") for i, f in enumerate(features)]
    scales = [_number(f.get("scale"), f"{at}[{i}].scale") for i, f in enumerate(features)]
    if any(s <= 0.0 for s in scales):
        raise ValueError(f"every {at}[].scale must be > 0")
    coef = [_number(f.get("weight"), f"{at}[{i}].weight") for i, f in enumerate(features)]
    ranks = np.asarray(_numbers(doc.get("rank_logits"), f"{where}.rank_logits"))
    if ranks.size < 2 or np.any(np.diff(ranks) < 0):
        raise ValueError(f"{where}.rank_logits must hold at least two non-decreasing numbers")
    return Segment(
        intercept=_number(doc.get("intercept"), f"{where}.intercept"),
        means=np.asarray(means, dtype=np.float64),
        scales=np.asarray(scales, dtype=np.float64),
        coef=np.asarray(coef, dtype=np.float64),
        rank_logits=ranks.astype(np.float64),
    )


def _parse(doc: object) -> ScorerWeights:
    if not isinstance(doc, dict):
        raise ValueError("top level must be a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise ValueError(f"'format' must be '{FORMAT_NAME}'")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported 'version' (this airlock reads version {FORMAT_VERSION}; "
            "retrain older files with `airlock train-router`)"
        )
    if doc.get("model") != "segmented-logistic":
        raise ValueError("'model' must be 'segmented-logistic'")
    raw_segments = doc.get("segments")
    if not isinstance(raw_segments, dict) or sorted(raw_segments) != sorted(SEGMENTS):
        raise ValueError(f"'segments' must be an object with exactly {', '.join(SEGMENTS)}")
    segments = {name: _segment(raw_segments[name], f"segments.{name}") for name in SEGMENTS}
    max_chars = doc.get("max_chars")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError("'max_chars' must be a positive integer")
    clip = _number(doc.get("clip"), "clip")
    if clip <= 0.0:
        raise ValueError("'clip' must be > 0")
    cal = doc.get("calibration")
    if not isinstance(cal, dict):
        raise ValueError("'calibration' must be an object")
    calibration = Calibration(
        score_quantiles=_numbers(cal.get("score_quantiles"), "calibration.score_quantiles"),
        pgr=_numbers(cal.get("pgr"), "calibration.pgr"),
    )
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    return ScorerWeights(
        segments=segments,
        max_chars=max_chars,
        clip=clip,
        calibration=calibration,
        metadata=metadata,
    )


def weights_from_dict(doc: object, *, source: str = "<dict>") -> ScorerWeights:
    """Validate a parsed weight document; errors name `source` and the bad field."""
    try:
        return _parse(doc)
    except ValueError as exc:
        raise WeightsFileError(f"scorer weights {source} are invalid: {exc}") from exc


def load_weights(path: Path) -> ScorerWeights:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise WeightsFileError(f"cannot read scorer weights {path}: {reason}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WeightsFileError(
            f"scorer weights {path} are not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from exc
    return weights_from_dict(doc, source=str(path))


def dump_weights(weights: ScorerWeights, path: Path) -> None:
    """Write the weight file (sorted keys, so retraining on the same data is byte-identical)."""
    text = json.dumps(weights.to_dict(), indent=1, sort_keys=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
