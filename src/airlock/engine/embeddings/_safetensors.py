"""A minimal, strict reader for the safetensors format.

The format is an 8-byte little-endian header length, a JSON header mapping tensor
names to ``{"dtype", "shape", "data_offsets"}``, then the raw little-endian bytes.
Reading it ourselves avoids a dependency for a few dozen lines; every field is
checked because a malformed file must fail loudly, not produce garbage weights.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
from numpy.typing import NDArray

__all__ = ["SafetensorsFormatError", "read_safetensors"]

_DTYPES: dict[str, np.dtype[np.generic]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# A header larger than this is not a model we ship; refuse rather than parse it.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsFormatError(ValueError):
    """The bytes are not a well-formed safetensors file (or use an unsupported dtype)."""


def read_safetensors(data: bytes) -> dict[str, NDArray[np.generic]]:
    """Parse ``data`` and return read-only arrays viewing it, keyed by tensor name."""
    if len(data) < 8:
        raise SafetensorsFormatError("file shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise SafetensorsFormatError(f"header length {header_len} exceeds the file size")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsFormatError("header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise SafetensorsFormatError("header is not a JSON object")

    body = memoryview(data)[8 + header_len :]
    tensors: dict[str, NDArray[np.generic]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _tensor(name, entry, body)
    return tensors


def _tensor(name: str, entry: object, body: memoryview) -> NDArray[np.generic]:
    if not isinstance(entry, dict):
        raise SafetensorsFormatError(f"entry for tensor {name!r} is not an object")
    dtype_name = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise SafetensorsFormatError(f"tensor {name!r} has unsupported dtype {dtype_name!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise SafetensorsFormatError(f"tensor {name!r} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise SafetensorsFormatError(f"tensor {name!r} has invalid data_offsets")
    begin, end = offsets
    dtype = _DTYPES[dtype_name]
    expected = math.prod(shape) * dtype.itemsize
    if not begin <= end <= len(body) or end - begin != expected:
        raise SafetensorsFormatError(
            f"tensor {name!r} data_offsets do not match its shape and dtype or the file size"
        )
    return np.frombuffer(body[begin:end], dtype=dtype).reshape(shape)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
