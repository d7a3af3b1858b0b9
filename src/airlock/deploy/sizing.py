"""Memory arithmetic for serving a catalog model with vLLM: weights, KV cache, overheads.

Pure functions of the architecture; the planner combines them. Conventions:

* KV cache: each attention layer stores a key and a value vector per KV head per token:
  ``2 * kv_heads * head_dim * bytes`` per layer per token.
* Sliding-window layers (Gemma 3) keep only the last ``window`` tokens, so a sequence of
  ``L`` tokens costs ``global_layers * L + local_layers * min(L, window)`` layer-tokens.
* vLLM allocates the KV cache in blocks of ``BLOCK_SIZE`` tokens, so a sequence's length is
  rounded up to a whole block.
* Weights: bf16 = 2 bytes/parameter. fp8 = 1 byte for the linear (matmul) layers, while the
  embedding, the LM head and any vision tower stay bf16 (vLLM's fp8 path quantizes Linear
  layers only). int4-awq = 4 bits per linear weight plus, per group of 128 weights, one
  fp16 scale and one 4-bit zero point (2.5 bytes/group), i.e. 133/256 bytes per weight;
  the embedding, LM head and vision tower stay 16-bit. Norm weights (< 0.01 % of
  parameters) are counted with the linear layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from airlock.deploy.catalog import ModelSpec

__all__ = [
    "AWQ_GROUP_SIZE",
    "BLOCK_SIZE",
    "GIB",
    "DType",
    "KvCacheDType",
    "OverheadAssumptions",
    "activation_bytes_per_gpu",
    "allocated_tokens",
    "dtype_names",
    "kv_bytes_per_element",
    "kv_bytes_per_sequence",
    "kv_bytes_per_token",
    "kv_bytes_per_token_global",
    "kv_cache_dtype_names",
    "kv_heads_per_gpu",
    "linear_parameters",
    "weight_bytes",
]

DType = Literal["bf16", "fp8", "int4-awq"]
KvCacheDType = Literal["auto", "fp8"]

GIB: Final = 1024**3
BLOCK_SIZE: Final = 16
AWQ_GROUP_SIZE: Final = 128
# Per AWQ group: one fp16 scale (2 bytes) + one packed 4-bit zero point (0.5 bytes),
# i.e. 5 half-bytes.
_AWQ_GROUP_OVERHEAD_HALF_BYTES: Final = 5


def dtype_names() -> tuple[str, ...]:
    return get_args(DType)


def kv_cache_dtype_names() -> tuple[str, ...]:
    return get_args(KvCacheDType)


def linear_parameters(model: ModelSpec) -> int:
    """Parameters of the language model's matmul layers (what fp8/int4 quantize)."""
    return (
        model.parameters
        - model.embedding_parameters
        - model.lm_head_parameters
        - model.extra_parameters
    )


def weight_bytes(model: ModelSpec, dtype: DType) -> int:
    """Bytes of the whole checkpoint in GPU memory (all tensor-parallel shards together)."""
    kept_16bit = model.embedding_parameters + model.lm_head_parameters + model.extra_parameters
    linear = linear_parameters(model)
    if dtype == "bf16":
        return model.parameters * 2
    if dtype == "fp8":
        return linear + kept_16bit * 2
    # int4-awq: 0.5 byte/weight + 2.5 bytes per group of G weights = (G + 5) / (2G)
    # byte/weight (133/256 for G = 128); ceil so a partial byte still counts.
    numerator = linear * (AWQ_GROUP_SIZE + _AWQ_GROUP_OVERHEAD_HALF_BYTES)
    return -(-numerator // (2 * AWQ_GROUP_SIZE)) + kept_16bit * 2


def kv_bytes_per_element(kv_cache_dtype: KvCacheDType) -> int:
    """Bytes per cached K or V element: vLLM's ``auto`` keeps the 16-bit model dtype."""
    return 1 if kv_cache_dtype == "fp8" else 2


def kv_heads_per_gpu(model: ModelSpec, tp: int) -> int:
    """KV heads each GPU stores: sharded when ``tp`` divides them, else replicated (one per
    GPU, as vLLM does when tp > kv_heads)."""
    return max(1, model.kv_heads // tp)


def kv_bytes_per_token(model: ModelSpec, kv_cache_dtype: KvCacheDType, tp: int = 1) -> int:
    """KV bytes one token costs while it is held by *every* layer (all layers, all KV heads).

    With ``tp == 1`` this is the whole-model figure; otherwise the per-GPU share (including
    replication when tp > kv_heads). For sliding-window models this is the cost of a token
    inside the window; see :func:`kv_bytes_per_token_global` for tokens beyond it.
    """
    heads = model.kv_heads if tp == 1 else kv_heads_per_gpu(model, tp)
    return 2 * model.layers * heads * model.head_dim * kv_bytes_per_element(kv_cache_dtype)


def kv_bytes_per_token_global(model: ModelSpec, kv_cache_dtype: KvCacheDType, tp: int = 1) -> int:
    """KV bytes per token held only by the global (full-attention) layers: the marginal cost
    of a token beyond the sliding window. Equals :func:`kv_bytes_per_token` without one."""
    heads = model.kv_heads if tp == 1 else kv_heads_per_gpu(model, tp)
    return 2 * model.global_layers * heads * model.head_dim * kv_bytes_per_element(kv_cache_dtype)


def allocated_tokens(context: int) -> int:
    """Tokens vLLM reserves for a sequence of ``context`` tokens (whole blocks)."""
    return -(-context // BLOCK_SIZE) * BLOCK_SIZE


def kv_bytes_per_sequence(
    model: ModelSpec, context: int, kv_cache_dtype: KvCacheDType, tp: int = 1
) -> int:
    """KV bytes one sequence of ``context`` tokens holds (whole model when tp == 1, else
    per GPU), counting sliding-window layers at ``min(context, window)``."""
    tokens = allocated_tokens(context)
    heads = model.kv_heads if tp == 1 else kv_heads_per_gpu(model, tp)
    per_layer_token = 2 * heads * model.head_dim * kv_bytes_per_element(kv_cache_dtype)
    window = model.sliding_window.window if model.sliding_window else tokens
    layer_tokens = model.global_layers * tokens + model.local_layers * min(tokens, window)
    return per_layer_token * layer_tokens


@dataclass(frozen=True, slots=True)
class OverheadAssumptions:
    """Non-weight, non-KV memory per GPU; stated so the user can judge the plan.

    * ``runtime_bytes``: CUDA context, cuBLAS/NCCL workspaces and vLLM's CUDA-graph pool.
      vLLM logs 0.3-1.5 GiB for graphs and ~0.5 GiB for the context; 1.5 GiB covers both.
    * activations: vLLM profiles one forward pass of ``max_num_batched_tokens`` tokens; the
      peak is the MLP's gate+up output (2 * intermediate / tp per token) plus about four
      hidden-size buffers per token in 16-bit, plus fp32 logits (and one sampler copy) for
      up to ``max_num_seqs`` rows of the full vocabulary.
    """

    runtime_bytes: int = 3 * GIB // 2
    activation_hidden_buffers: int = 4
    logits_copies: int = 2


def activation_bytes_per_gpu(
    model: ModelSpec,
    tp: int,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    assumptions: OverheadAssumptions,
) -> int:
    """Peak activation memory of vLLM's profiling forward pass on one GPU (estimate)."""
    per_token = (
        2 * model.intermediate_size // tp
        + assumptions.activation_hidden_buffers * model.hidden_size
    ) * 2
    logit_rows = min(max_num_seqs, max_num_batched_tokens)
    logits = logit_rows * model.vocab_size * 4 * assumptions.logits_copies
    return max_num_batched_tokens * per_token + logits
