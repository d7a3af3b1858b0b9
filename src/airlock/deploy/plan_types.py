"""Typed input and output of the GPU sizing planner (``airlock plan``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from airlock.deploy.sizing import DType, KvCacheDType

__all__ = ["GpuMemory", "Plan", "PlanRequest", "ThroughputEstimate"]

DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_AVG_CONTEXT = 2048


class PlanRequest(BaseModel):
    """What the operator asks for. ``None`` fields take documented defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    gpu: str
    gpus: int = 1
    dtype: DType = "bf16"
    kv_cache_dtype: KvCacheDType = "auto"
    max_model_len: int | None = None
    concurrency: int | None = None
    gpu_price_per_hour: float | None = None
    gpu_memory_utilization: float = 0.9
    # Average tokens in context per running sequence for the throughput estimate
    # (default: min(2048, max_model_len)); memory fit always uses max_model_len.
    avg_context: int | None = None
    max_num_batched_tokens: int | None = None


class GpuMemory(BaseModel):
    """Where one GPU's memory goes (bytes)."""

    model_config = ConfigDict(frozen=True)

    total_bytes: int
    usable_bytes: int = Field(description="total * gpu_memory_utilization")
    weights_bytes: int
    activation_bytes: int
    runtime_overhead_bytes: int
    kv_cache_bytes: int = Field(description="left for the KV cache; negative = overcommitted")


class ThroughputEstimate(BaseModel):
    """Roofline upper bounds (not measurements): decode limited by memory bandwidth (or
    compute at large batches), prefill by tensor-core compute, at peak datasheet figures."""

    model_config = ConfigDict(frozen=True)

    label: str = "estimate (roofline upper bound at datasheet peaks)"
    avg_context: int
    decode_batch_per_replica: int
    decode_bound: str
    decode_step_seconds: float
    decode_tokens_per_second: float
    decode_tokens_per_second_per_sequence: float
    prefill_tokens_per_second: float
    prefill_seconds_at_max_model_len: float
    compute_tflops_per_gpu: float
    cost_per_million_output_tokens_usd: float | None = None


class Plan(BaseModel):
    """The planner's answer. All byte counts are exact integers from the architecture except
    activation/runtime overheads (stated assumptions)."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    gpus: int
    dtype: DType
    kv_cache_dtype: KvCacheDType
    max_model_len: int
    concurrency: int | None
    gpu_memory_utilization: float
    gpu_price_per_hour: float | None

    fits: bool
    tensor_parallel_size: int
    data_parallel_size: int
    unused_gpus: int
    max_num_seqs: int
    max_num_batched_tokens: int

    weights_bytes: int
    kv_cache_bytes_per_token: int
    kv_cache_bytes_per_token_beyond_window: int
    kv_cache_bytes_per_sequence: int
    kv_cache_bytes_total: int
    memory_per_gpu: GpuMemory

    max_concurrent_sequences: int
    context_at_concurrency: int | None
    throughput: ThroughputEstimate | None

    reasons: list[str]
    suggestions: list[str]
    notes: list[str]
    assumptions: dict[str, str]
