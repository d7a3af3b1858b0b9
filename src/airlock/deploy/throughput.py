"""Roofline throughput estimates for a plan (labelled as estimates everywhere).

Decode: every step reads each GPU's weight shard plus the KV cache of every running
sequence, so a step takes at least ``bytes / bandwidth``; at large batches the matmuls take
``flops / tensor_flops`` instead, and tensor parallelism adds two all-reduces of the hidden
state per layer over the interconnect. Prefill is compute-bound: ``tensor_flops /
flops_per_token``. All at datasheet peaks, so these are upper bounds; measured vLLM decode
is typically 50-80 % of the bandwidth roofline.
"""

from __future__ import annotations

from dataclasses import dataclass

from airlock.deploy.catalog import GpuSpec, ModelSpec
from airlock.deploy.plan_types import ThroughputEstimate
from airlock.deploy.sizing import DType, KvCacheDType, kv_bytes_per_sequence

__all__ = ["DecodeSetting", "compute_tflops", "estimate_throughput", "flop_parameters"]


def compute_tflops(gpu: GpuSpec, dtype: DType) -> float:
    """Dense tensor TFLOPS the matmuls run at. fp8 uses FP8 tensor cores where the GPU has
    them; Ampere (no FP8) and AWQ int4 run weight-only kernels that compute in bf16."""
    if dtype == "fp8" and gpu.fp8_tflops is not None:
        return gpu.fp8_tflops
    return gpu.bf16_tflops


def flop_parameters(model: ModelSpec) -> int:
    """Parameters that take part in a matmul per token: everything except the embedding
    lookup and the vision tower; a tied LM head still multiplies by the embedding."""
    matmul = model.parameters - model.extra_parameters - model.embedding_parameters
    return matmul + (model.embedding_parameters if model.tie_word_embeddings else 0)


def _attention_span_tokens(model: ModelSpec, span: int) -> int:
    """Sum over layers of the tokens one query attends to, given a full span."""
    window = model.sliding_window.window if model.sliding_window else span
    return model.global_layers * span + model.local_layers * min(span, window)


def _attention_flops_per_token(model: ModelSpec, span: int) -> int:
    # QK^T and PV: 2 matmuls * 2 flops per MAC * heads * head_dim per attended token.
    return 4 * model.attention_heads * model.head_dim * _attention_span_tokens(model, span)


@dataclass(frozen=True, slots=True)
class DecodeSetting:
    tp: int
    replicas: int
    gpus_paid: int
    batch_per_replica: int
    avg_context: int
    max_model_len: int
    weights_bytes_per_gpu: int
    kv_cache_dtype: KvCacheDType
    dtype: DType
    gpu_price_per_hour: float | None


def estimate_throughput(model: ModelSpec, gpu: GpuSpec, s: DecodeSetting) -> ThroughputEstimate:
    tflops = compute_tflops(gpu, s.dtype) * 1e12
    bandwidth = gpu.bandwidth_gb_s * 1e9
    b = s.batch_per_replica

    kv_read = b * kv_bytes_per_sequence(model, s.avg_context, s.kv_cache_dtype, s.tp)
    memory_time = (s.weights_bytes_per_gpu + kv_read) / bandwidth
    decode_flops_per_token = 2 * flop_parameters(model) + _attention_flops_per_token(
        model, s.avg_context
    )
    compute_time = b * decode_flops_per_token / s.tp / tflops
    comm_time = 0.0
    if s.tp > 1:
        # Ring all-reduce of b * hidden 16-bit values, twice per layer; each GPU sends
        # 2 * (tp - 1) / tp of it, at half the (bidirectional) link figure.
        volume = 2 * model.layers * b * model.hidden_size * 2 * 2 * (s.tp - 1) / s.tp
        comm_time = volume / (gpu.interconnect.bandwidth_gb_s * 1e9 / 2)
    step = max(memory_time, compute_time) + comm_time
    bound = "memory bandwidth" if memory_time >= compute_time else "compute"
    decode_tps = b / step * s.replicas

    # Prefill of a prompt of length L: a token at position i attends to i tokens, so the
    # average span is L / 2.
    prefill_flops = 2 * flop_parameters(model) + _attention_flops_per_token(
        model, max(1, s.avg_context // 2)
    )
    prefill_tps = tflops * s.tp / prefill_flops * s.replicas
    long_flops = s.max_model_len * (
        2 * flop_parameters(model) + _attention_flops_per_token(model, max(1, s.max_model_len // 2))
    )
    prefill_long = long_flops / (tflops * s.tp)

    cost = None
    if s.gpu_price_per_hour is not None:
        cost = s.gpu_price_per_hour * s.gpus_paid / (decode_tps * 3600) * 1e6
    return ThroughputEstimate(
        avg_context=s.avg_context,
        decode_batch_per_replica=b,
        decode_bound=bound,
        decode_step_seconds=step,
        decode_tokens_per_second=decode_tps,
        decode_tokens_per_second_per_sequence=1 / step,
        prefill_tokens_per_second=prefill_tps,
        prefill_seconds_at_max_model_len=prefill_long,
        compute_tflops_per_gpu=tflops / 1e12,
        cost_per_million_output_tokens_usd=cost,
    )
