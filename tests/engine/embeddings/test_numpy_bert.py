"""Pieces of the numpy BERT forward pass that can be checked against first principles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from airlock.engine.embeddings import SentenceEmbeddingModel
from airlock.engine.embeddings._numpy_bert import BertConfig, _gelu, _layer_norm

CONFIG = {
    "hidden_act": "gelu",
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 32,
    "vocab_size": 50,
    "layer_norm_eps": 1e-12,
}


def test_gelu_matches_erf_definition() -> None:
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    expected = np.asarray([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    got = _gelu(x.copy())
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_layer_norm_normalises_then_scales() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8)).astype(np.float32) * 3 + 1
    out = _layer_norm(x.copy(), np.full(8, 2, np.float32), np.full(8, 0.5, np.float32), 1e-12)
    np.testing.assert_allclose(out.mean(axis=-1), 0.5, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=-1), 2.0, atol=1e-4)


def test_config_validation() -> None:
    assert BertConfig.from_json(CONFIG).hidden_size == 8
    with pytest.raises(ValueError, match="gelu"):
        BertConfig.from_json({**CONFIG, "hidden_act": "relu"})
    with pytest.raises(ValueError, match="absolute"):
        BertConfig.from_json({**CONFIG, "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="hidden_size"):
        BertConfig.from_json({**CONFIG, "hidden_size": "8"})
    with pytest.raises(ValueError, match="layer_norm_eps"):
        BertConfig.from_json({**CONFIG, "layer_norm_eps": 0})


def test_padding_does_not_change_hidden_states_of_real_tokens(
    reference: SentenceEmbeddingModel,
) -> None:
    encoder = reference._encoder
    ids = np.asarray([[101, 7592, 2088, 102]], dtype=np.int64)
    padded = np.asarray([[101, 7592, 2088, 102, 0, 0, 0]], dtype=np.int64)
    mask = np.asarray([[1, 1, 1, 1, 0, 0, 0]], dtype=np.int64)
    plain = encoder(ids, np.ones_like(ids))
    with_padding = encoder(padded, mask)
    np.testing.assert_allclose(with_padding[:, :4], plain, atol=1e-5)


def test_missing_or_misshapen_weights_are_reported() -> None:
    from airlock.engine.embeddings._numpy_bert import NumpyBertEncoder

    config = BertConfig.from_json(CONFIG)
    with pytest.raises(ValueError, match="no tensor"):
        NumpyBertEncoder({}, config)
    wrong = {"embeddings.word_embeddings.weight": np.zeros((50, 9), np.float32)}
    with pytest.raises(ValueError, match="shape"):
        NumpyBertEncoder(wrong, config)
