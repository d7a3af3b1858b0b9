"""The minimal safetensors reader: correct on well-formed files, loud on malformed ones."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from airlock.engine.embeddings._safetensors import SafetensorsFormatError, read_safetensors


def _file(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _valid() -> tuple[bytes, np.ndarray, np.ndarray]:
    weights = np.arange(6, dtype="<f4").reshape(2, 3) / 7
    ids = np.asarray([[5, -3]], dtype="<i8")
    body = weights.tobytes() + ids.tobytes()
    header = {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "ids": {"dtype": "I64", "shape": [1, 2], "data_offsets": [24, 40]},
    }
    return _file(header, body), weights, ids


def test_reads_tensors_with_dtype_and_shape() -> None:
    data, weights, ids = _valid()
    tensors = read_safetensors(data)
    assert set(tensors) == {"w", "ids"}
    np.testing.assert_array_equal(tensors["w"], weights)
    assert tensors["w"].dtype == np.float32
    np.testing.assert_array_equal(tensors["ids"], ids)


def test_scalar_tensor() -> None:
    data = _file(
        {"s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}}, struct.pack("<d", 2.5)
    )
    assert float(read_safetensors(data)["s"]) == 2.5


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}, "dtype"),
        ({"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}, "shape"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, "data_offsets"),
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "do not match"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "do not match"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}, "do not match"),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "shape"),
        ("not an object", "not an object"),
    ],
)
def test_rejects_malformed_entries(entry: object, match: str) -> None:
    data = _file({"t": entry}, b"\0" * 8)
    with pytest.raises(SafetensorsFormatError, match=match):
        read_safetensors(data)


def test_rejects_truncated_or_garbled_headers() -> None:
    with pytest.raises(SafetensorsFormatError, match="shorter"):
        read_safetensors(b"\1\0")
    with pytest.raises(SafetensorsFormatError, match="exceeds"):
        read_safetensors(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(SafetensorsFormatError, match="JSON"):
        read_safetensors(struct.pack("<Q", 3) + b"{x}")
    with pytest.raises(SafetensorsFormatError, match="object"):
        read_safetensors(struct.pack("<Q", 2) + b"[]")
