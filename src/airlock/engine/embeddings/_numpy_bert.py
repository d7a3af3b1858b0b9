"""The BERT encoder forward pass in plain numpy (float32), from safetensors weights.

This is the float reference the other encoders are measured against, and a backend
in its own right: it needs nothing beyond numpy. It follows Hugging Face's
``BertModel`` (post-LayerNorm, exact erf GELU, absolute positions, segment 0).
The object holds read-only arrays and no per-call state, so concurrent calls are safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["BertConfig", "NumpyBertEncoder"]

Float32Array = NDArray[np.float32]
Int64Array = NDArray[np.int64]

# Added to attention scores of padding keys: exp() of it underflows to exactly 0.
_MASKED_SCORE = np.float32(-1e9)


@dataclass(frozen=True, slots=True)
class BertConfig:
    """The few ``config.json`` fields the forward pass needs."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_json(cls, config: Mapping[str, object]) -> BertConfig:
        if config.get("hidden_act") != "gelu":
            raise ValueError("only BERT models with exact 'gelu' activation are supported")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return cls(
            hidden_size=_int(config, "hidden_size"),
            num_hidden_layers=_int(config, "num_hidden_layers"),
            num_attention_heads=_int(config, "num_attention_heads"),
            intermediate_size=_int(config, "intermediate_size"),
            max_position_embeddings=_int(config, "max_position_embeddings"),
            vocab_size=_int(config, "vocab_size"),
            layer_norm_eps=float(_number(config, "layer_norm_eps")),
        )


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: Float32Array  # (hidden, 3*hidden): query, key and value fused into one matmul
    qkv_b: Float32Array
    attn_out_w: Float32Array
    attn_out_b: Float32Array
    attn_ln_w: Float32Array
    attn_ln_b: Float32Array
    inter_w: Float32Array
    inter_b: Float32Array
    out_w: Float32Array
    out_b: Float32Array
    out_ln_w: Float32Array
    out_ln_b: Float32Array


class NumpyBertEncoder:
    """``last_hidden_state`` of a BERT model computed with numpy."""

    name = "numpy-float32"

    def __init__(self, tensors: Mapping[str, NDArray[np.generic]], config: BertConfig) -> None:
        get = _Getter(tensors, config)
        h = config.hidden_size
        if h % config.num_attention_heads:
            raise ValueError("hidden_size is not a multiple of num_attention_heads")
        self._config = config
        self._head_dim = h // config.num_attention_heads
        self._word = get("embeddings.word_embeddings.weight", (config.vocab_size, h))
        self._position = get(
            "embeddings.position_embeddings.weight", (config.max_position_embeddings, h)
        )
        # Segment 0 only: every input is a single sentence.
        self._segment0 = get("embeddings.token_type_embeddings.weight", (None, h))[0]
        self._emb_ln_w = get("embeddings.LayerNorm.weight", (h,))
        self._emb_ln_b = get("embeddings.LayerNorm.bias", (h,))
        self._layers = tuple(
            _load_layer(get, f"encoder.layer.{i}.", config) for i in range(config.num_hidden_layers)
        )

    @property
    def config(self) -> BertConfig:
        return self._config

    def __call__(self, input_ids: Int64Array, attention_mask: Int64Array) -> Float32Array:
        """Hidden states ``(batch, seq, hidden)`` for right-padded ``input_ids``."""
        batch, seq = input_ids.shape
        if seq > self._config.max_position_embeddings:
            raise ValueError("sequence longer than the model's position embeddings")
        h = self._config.hidden_size
        x = self._word[input_ids] + self._position[:seq] + self._segment0
        x = _layer_norm(x.reshape(batch * seq, h), self._emb_ln_w, self._emb_ln_b, self._eps)
        key_bias = np.where(attention_mask[:, None, None, :] > 0, np.float32(0), _MASKED_SCORE)
        for layer in self._layers:
            x = self._layer(x, layer, key_bias, batch, seq)
        return x.reshape(batch, seq, h)

    @property
    def _eps(self) -> float:
        return self._config.layer_norm_eps

    def _layer(
        self, x: Float32Array, layer: _Layer, key_bias: Float32Array, batch: int, seq: int
    ) -> Float32Array:
        heads, head_dim = self._config.num_attention_heads, self._head_dim
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, seq, 3, heads, head_dim)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, seq, head_dim)
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(head_dim))
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * seq, heads * head_dim)
        attn = context @ layer.attn_out_w + layer.attn_out_b
        x = _layer_norm(x + attn, layer.attn_ln_w, layer.attn_ln_b, self._eps)
        inter = _gelu(x @ layer.inter_w + layer.inter_b)
        out = inter @ layer.out_w + layer.out_b
        return _layer_norm(x + out, layer.out_ln_w, layer.out_ln_b, self._eps)


class _Getter:
    """Fetches a tensor as contiguous float32 and checks its shape (``None`` = any)."""

    def __init__(self, tensors: Mapping[str, NDArray[np.generic]], config: BertConfig) -> None:
        self._tensors = tensors
        self._config = config

    def __call__(self, name: str, shape: tuple[int | None, ...]) -> Float32Array:
        if name not in self._tensors:
            raise ValueError(f"weights file has no tensor {name!r}")
        array = self._tensors[name]
        if len(array.shape) != len(shape) or any(
            want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
        ):
            raise ValueError(f"tensor {name!r} has shape {array.shape}, expected {shape}")
        return np.ascontiguousarray(array, dtype=np.float32)


def _load_layer(get: _Getter, prefix: str, config: BertConfig) -> _Layer:
    h, inter = config.hidden_size, config.intermediate_size

    # torch Linear stores (out, in); transpose once here so the forward pass is x @ W.
    def linear(name: str, out_dim: int, in_dim: int) -> tuple[Float32Array, Float32Array]:
        weight = get(prefix + name + ".weight", (out_dim, in_dim))
        bias = get(prefix + name + ".bias", (out_dim,))
        return np.ascontiguousarray(weight.T), bias

    q_w, q_b = linear("attention.self.query", h, h)
    k_w, k_b = linear("attention.self.key", h, h)
    v_w, v_b = linear("attention.self.value", h, h)
    attn_out_w, attn_out_b = linear("attention.output.dense", h, h)
    inter_w, inter_b = linear("intermediate.dense", inter, h)
    out_w, out_b = linear("output.dense", h, inter)
    return _Layer(
        qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
        qkv_b=np.concatenate([q_b, k_b, v_b]),
        attn_out_w=attn_out_w,
        attn_out_b=attn_out_b,
        attn_ln_w=get(prefix + "attention.output.LayerNorm.weight", (h,)),
        attn_ln_b=get(prefix + "attention.output.LayerNorm.bias", (h,)),
        inter_w=inter_w,
        inter_b=inter_b,
        out_w=out_w,
        out_b=out_b,
        out_ln_w=get(prefix + "output.LayerNorm.weight", (h,)),
        out_ln_b=get(prefix + "output.LayerNorm.bias", (h,)),
    )


def _layer_norm(
    x: Float32Array, weight: Float32Array, bias: Float32Array, eps: float
) -> Float32Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred: Float32Array = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(var + np.float32(eps))
    centred *= weight
    centred += bias
    return centred


# Abramowitz & Stegun 7.1.26: erf(z) ≈ 1 - t·P(t)·exp(-z²), t = 1/(1 + p·z), |error| < 1.5e-7.
_ERF_P = np.float32(0.3275911)
_ERF_COEFFS = tuple(
    np.float32(c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)


def _gelu(x: Float32Array) -> Float32Array:
    """Exact (erf) GELU, ``x * Φ(x)``, as BERT uses; numpy has no erf of its own."""
    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + _ERF_P * z)
    poly = np.full_like(t, _ERF_COEFFS[0])
    for coeff in _ERF_COEFFS[1:]:
        poly *= t
        poly += coeff
    poly *= t
    erf: Float32Array = np.copysign(1.0 - poly * np.exp(-z * z), x)
    erf += 1.0
    erf *= x
    erf *= np.float32(0.5)
    return erf


def _int(config: Mapping[str, object], key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"config field {key!r} must be a positive integer")
    return value


def _number(config: Mapping[str, object], key: str) -> float:
    value = config.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"config field {key!r} must be a positive number")
    return float(value)
