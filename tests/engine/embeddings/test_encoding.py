"""OpenAI's base64 embedding encoding: little-endian float32, base64."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest

from airlock.engine.embeddings import SentenceEmbeddingModel, decode_base64, encode_base64


def test_round_trip_is_exact_for_model_output(model: SentenceEmbeddingModel) -> None:
    vectors = model.embed(["A man is eating food.", "hello"]).vectors
    for vector in vectors:
        decoded = decode_base64(encode_base64(vector))
        assert decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, vector)


def test_layout_is_little_endian_float32() -> None:
    values = [1.0, -2.5, 0.1, 3.4028234663852886e38]
    expected = base64.b64encode(struct.pack("<4f", *values)).decode("ascii")
    assert encode_base64(values) == expected
    assert encode_base64(np.asarray(values, dtype=">f4")) == expected
    assert encode_base64(np.asarray(values, dtype=np.float64)) == expected


def test_decoding_matches_what_the_openai_client_does(model: SentenceEmbeddingModel) -> None:
    vector = model.embed(["hello"]).vectors[0]
    # The official client: np.frombuffer(base64.b64decode(data), dtype="float32").
    client_view = np.frombuffer(base64.b64decode(encode_base64(vector)), dtype="float32")
    np.testing.assert_array_equal(client_view, vector)
    assert len(base64.b64decode(encode_base64(vector))) == 4 * model.dimensions


def test_encode_rejects_a_matrix() -> None:
    with pytest.raises(ValueError, match="one vector"):
        encode_base64(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize(
    ("text", "match"),
    [("not base64!!", "base64"), (base64.b64encode(b"abc").decode(), "whole number")],
)
def test_decode_rejects_bad_input(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode_base64(text)
