"""OpenAI's ``encoding_format: "base64"``: little-endian float32 bytes, base64-encoded."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["decode_base64", "encode_base64"]

_LE_FLOAT32 = np.dtype("<f4")


def encode_base64(vector: Sequence[float] | NDArray[np.floating]) -> str:
    """The base64 text OpenAI returns for one embedding with ``encoding_format="base64"``."""
    array = np.asarray(vector, dtype=_LE_FLOAT32)
    if array.ndim != 1:
        raise ValueError("encode_base64 takes one vector (a 1-D sequence of floats)")
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_base64(text: str) -> NDArray[np.float32]:
    """Inverse of :func:`encode_base64` (what the ``openai`` client does on receipt)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("not valid base64") from exc
    if len(raw) % _LE_FLOAT32.itemsize:
        raise ValueError("decoded length is not a whole number of float32 values")
    return np.frombuffer(raw, dtype=_LE_FLOAT32).astype(np.float32)
