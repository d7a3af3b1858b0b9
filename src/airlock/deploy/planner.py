"""GPU sizing planner: which tensor-parallel size, how many sequences, how fast, how much.

``plan(request)`` answers for one model on N GPUs of one type under vLLM's memory model:
``gpu_memory_utilization * total`` per GPU holds the weight shard, the activation peak of
vLLM's profiling pass, runtime overheads, and the KV cache (everything left). The smallest
valid tensor-parallel size that holds at least one sequence of ``max_model_len`` tokens is
chosen; spare GPUs become data-parallel replicas. When nothing fits, the plan says why and
which changes would fit (more GPUs, fp8, int4, fp8 KV cache, shorter context, another GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import ValidationError

from airlock.deploy.catalog import GpuSpec, ModelSpec, get_gpu, get_model, load_gpus
from airlock.deploy.errors import PlanInputError
from airlock.deploy.plan_types import (
    DEFAULT_AVG_CONTEXT,
    DEFAULT_MAX_NUM_SEQS,
    GpuMemory,
    Plan,
    PlanRequest,
)
from airlock.deploy.sizing import (
    BLOCK_SIZE,
    GIB,
    DType,
    KvCacheDType,
    OverheadAssumptions,
    activation_bytes_per_gpu,
    dtype_names,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    kv_bytes_per_token_global,
    kv_cache_dtype_names,
    weight_bytes,
)
from airlock.deploy.throughput import DecodeSetting, estimate_throughput

__all__ = ["MAX_GPUS", "make_request", "max_context_for", "plan", "valid_tp_sizes"]

MAX_GPUS = 64
_LARGE_GPU_MIB = 70 * 1024
_DTYPE_ORDER: tuple[DType, ...] = ("bf16", "fp8", "int4-awq")


def make_request(**fields: object) -> PlanRequest:
    """Build a :class:`PlanRequest`, turning validation failures into :class:`PlanInputError`
    with the valid choices spelled out."""
    try:
        return PlanRequest.model_validate(fields)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            if name == "dtype":
                parts.append(f"dtype must be one of {', '.join(dtype_names())}")
            elif name == "kv_cache_dtype":
                parts.append(f"kv_cache_dtype must be one of {', '.join(kv_cache_dtype_names())}")
            else:
                parts.append(f"{name}: {err['msg']}")
        raise PlanInputError("; ".join(parts), param=str(exc.errors()[0]["loc"][0])) from None


def valid_tp_sizes(model: ModelSpec, limit: int) -> list[int]:
    """Tensor-parallel sizes vLLM accepts for ``model`` up to ``limit`` GPUs: powers of two
    dividing the attention heads, and either dividing the KV heads or a multiple of them
    (vLLM then replicates KV heads)."""
    sizes = []
    p = 1
    while p <= limit:
        kv_ok = model.kv_heads % p == 0 or p % model.kv_heads == 0
        if model.attention_heads % p == 0 and kv_ok:
            sizes.append(p)
        p *= 2
    return sizes


@dataclass(frozen=True, slots=True)
class _Setting:
    model: ModelSpec
    gpu: GpuSpec
    dtype: DType
    kv: KvCacheDType
    max_len: int
    util: float
    max_num_seqs: int
    batched_tokens: int
    assumptions: OverheadAssumptions


@dataclass(frozen=True, slots=True)
class _Fit:
    tp: int
    memory: GpuMemory
    seq_bytes_per_gpu: int
    sequences: int  # full-length sequences one replica holds


def _evaluate(s: _Setting, tp: int) -> _Fit:
    total = s.gpu.memory_bytes
    usable = int(total * s.util)
    weights = -(-weight_bytes(s.model, s.dtype) // tp)
    act = activation_bytes_per_gpu(s.model, tp, s.batched_tokens, s.max_num_seqs, s.assumptions)
    runtime = s.assumptions.runtime_bytes
    kv = usable - weights - act - runtime
    seq = kv_bytes_per_sequence(s.model, s.max_len, s.kv, tp)
    memory = GpuMemory(
        total_bytes=total,
        usable_bytes=usable,
        weights_bytes=weights,
        activation_bytes=act,
        runtime_overhead_bytes=runtime,
        kv_cache_bytes=kv,
    )
    return _Fit(tp=tp, memory=memory, seq_bytes_per_gpu=seq, sequences=max(0, kv // seq))


def _first_fit(s: _Setting, sizes: list[int]) -> _Fit | None:
    for tp in sizes:
        fit = _evaluate(s, tp)
        if fit.sequences >= 1:
            return fit
    return None


def max_context_for(
    model: ModelSpec, kv_pool_per_gpu: int, sequences: int, kv: KvCacheDType, tp: int, limit: int
) -> int:
    """Largest context (whole blocks, ≤ ``limit``) at which ``sequences`` sequences fit in
    ``kv_pool_per_gpu`` bytes per GPU; 0 when not even one block each fits."""
    if kv_pool_per_gpu <= 0 or sequences <= 0:
        return 0
    lo, hi = 0, limit // BLOCK_SIZE  # in blocks; kv bytes grow monotonically with context
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sequences * kv_bytes_per_sequence(model, mid * BLOCK_SIZE, kv, tp) <= kv_pool_per_gpu:
            lo = mid
        else:
            hi = mid - 1
    return lo * BLOCK_SIZE


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _validate(req: PlanRequest, model: ModelSpec) -> int:
    if not 1 <= req.gpus <= MAX_GPUS:
        raise PlanInputError(f"gpus must be between 1 and {MAX_GPUS}", param="gpus")
    max_len = req.max_model_len if req.max_model_len is not None else model.max_context
    if max_len < BLOCK_SIZE:
        raise PlanInputError(f"max_model_len must be at least {BLOCK_SIZE}", param="max_model_len")
    if max_len > model.max_context:
        raise PlanInputError(
            f"max_model_len {max_len} exceeds {model.name}'s maximum context "
            f"{model.max_context} (config max_position_embeddings)",
            param="max_model_len",
        )
    if req.concurrency is not None and req.concurrency < 1:
        raise PlanInputError("concurrency must be at least 1", param="concurrency")
    if not 0 < req.gpu_memory_utilization <= 1:
        raise PlanInputError(
            "gpu_memory_utilization must be in (0, 1]", param="gpu_memory_utilization"
        )
    if req.gpu_price_per_hour is not None and req.gpu_price_per_hour <= 0:
        raise PlanInputError("gpu_price_per_hour must be positive", param="gpu_price_per_hour")
    if req.avg_context is not None and not 1 <= req.avg_context <= max_len:
        raise PlanInputError("avg_context must be between 1 and max_model_len", param="avg_context")
    if req.max_num_batched_tokens is not None and req.max_num_batched_tokens < 1:
        raise PlanInputError(
            "max_num_batched_tokens must be at least 1", param="max_num_batched_tokens"
        )
    return max_len


def _assumption_text(s: _Setting) -> dict[str, str]:
    a = s.assumptions
    return {
        "weights": (
            "bf16 2 B/param; fp8 1 B per linear weight, embedding/LM head/vision tower bf16; "
            "int4-awq 133/256 B per linear weight (4 bits + fp16 scale and 4-bit zero per "
            "128-weight group), embedding/LM head bf16"
        ),
        "kv_cache": (
            "2 (K,V) x layers x kv_heads x head_dim x bytes per token; sliding-window layers "
            "hold min(context, window) tokens; sequences rounded up to 16-token blocks"
        ),
        "activations": (
            f"profiling pass of {s.batched_tokens} tokens: (2 x intermediate/tp + "
            f"{a.activation_hidden_buffers} x hidden) x 2 B per token, plus fp32 logits x "
            f"{a.logits_copies} for min(max_num_seqs, batched tokens) rows"
        ),
        "runtime_overhead": (
            f"{_gib(a.runtime_bytes)} per GPU (CUDA context, workspaces, CUDA graphs)"
        ),
        "gpu_memory_utilization": f"{s.util} of the driver-reported total is vLLM's budget",
        "throughput": (
            "roofline upper bounds at datasheet peak bandwidth/TFLOPS; measured vLLM decode "
            "is typically 50-80% of it, so real cost per token is higher"
        ),
    }


def _suggestions(s: _Setting, req: PlanRequest, sizes: list[int]) -> list[str]:
    out: list[str] = []
    largest = sizes[-1]
    # More GPUs of the same type.
    for tp in valid_tp_sizes(s.model, MAX_GPUS):
        if tp > req.gpus:
            fit = _evaluate(s, tp)
            if fit.sequences >= 1:
                out.append(
                    f"use {tp} x {s.gpu.name} (tensor parallel {tp}): "
                    f"{fit.sequences} sequence(s) of {s.max_len} tokens fit"
                )
                break
    # Smaller weights.
    for dtype in _DTYPE_ORDER[_DTYPE_ORDER.index(s.dtype) + 1 :]:
        alt = _first_fit(replace(s, dtype=dtype), sizes)
        if alt is not None:
            extra = " (needs an AWQ-quantized checkpoint)" if dtype == "int4-awq" else ""
            out.append(
                f"--dtype {dtype}{extra}: fits at tensor parallel {alt.tp} with "
                f"{alt.sequences} sequence(s) of {s.max_len} tokens"
            )
            break
    if s.kv == "auto":
        alt = _first_fit(replace(s, kv="fp8"), sizes)
        if alt is not None:
            out.append(
                f"--kv-cache-dtype fp8: fits at tensor parallel {alt.tp} with "
                f"{alt.sequences} sequence(s) of {s.max_len} tokens"
            )
    pool = _evaluate(s, largest).memory.kv_cache_bytes
    ctx = max_context_for(s.model, pool, 1, s.kv, largest, s.max_len)
    if ctx >= BLOCK_SIZE:
        out.append(
            f"--max-model-len {ctx}: one sequence of that length fits at tensor parallel {largest}"
        )
    bigger = []
    for gpu in sorted(load_gpus().values(), key=lambda g: g.memory_mib):
        if gpu.name != s.gpu.name and _first_fit(replace(s, gpu=gpu), sizes) is not None:
            bigger.append(gpu.name)
    if bigger:
        out.append(f"{req.gpus} x one of: {', '.join(bigger)}")
    return out


def _no_fit_reasons(s: _Setting, fit: _Fit, req: PlanRequest, sizes: list[int]) -> list[str]:
    m = fit.memory
    reasons = []
    fixed = m.weights_bytes + m.activation_bytes + m.runtime_overhead_bytes
    if fixed > m.usable_bytes:
        reasons.append(
            f"at tensor parallel {fit.tp} each GPU needs {_gib(m.weights_bytes)} of "
            f"{s.dtype} weights + {_gib(m.activation_bytes)} activations + "
            f"{_gib(m.runtime_overhead_bytes)} runtime, more than the {_gib(m.usable_bytes)} "
            f"usable ({s.util} x {_gib(m.total_bytes)})"
        )
    else:
        reasons.append(
            f"at tensor parallel {fit.tp} only {_gib(m.kv_cache_bytes)} per GPU is left for "
            f"the KV cache, but one sequence of {s.max_len} tokens needs "
            f"{_gib(fit.seq_bytes_per_gpu)} per GPU"
        )
    if req.gpus > sizes[-1]:
        reasons.append(
            f"tensor parallel must be a power of two dividing {s.model.attention_heads} attention "
            f"heads and compatible with {s.model.kv_heads} KV heads, so at most {sizes[-1]} "
            f"GPUs can share one copy of {s.model.name}"
        )
    return reasons


def _notes(
    s: _Setting,
    fit: _Fit,
    req: PlanRequest,
    replicas: int,
    unused: int,
    max_seqs: int,
    ctx_at_c: int | None,
) -> list[str]:
    notes = []
    if req.concurrency is not None and ctx_at_c is not None and req.concurrency > max_seqs:
        notes.append(
            f"only {max_seqs} of the {req.concurrency} sequences can hold {s.max_len} tokens "
            f"at once; with all {req.concurrency} running each can hold about {ctx_at_c} "
            "tokens on average. vLLM still admits them (max-num-seqs) but queues or preempts "
            "sequences when the KV cache runs out"
        )
    if replicas > 1:
        notes.append(
            f"tensor parallel {fit.tp} is enough; the other GPUs run {replicas - 1} more "
            f"data-parallel replica(s) ({replicas} in total)"
        )
    if unused:
        notes.append(
            f"{unused} GPU(s) unused: tensor parallel sizes must be powers of two dividing "
            "the attention heads, and each replica needs the same number of GPUs"
        )
    if s.dtype == "fp8" and s.gpu.fp8_tflops is None:
        notes.append(
            f"{s.gpu.name} has no FP8 tensor cores: vLLM runs fp8 weight-only (W8A16); memory "
            "halves but matmuls run at bf16 speed"
        )
    if s.dtype == "int4-awq":
        notes.append("int4-awq needs an AWQ-quantized checkpoint: pass it as --model-path")
    if s.model.sliding_window is not None:
        notes.append(
            f"{s.model.name}: {s.model.local_layers} of {s.model.layers} layers use a "
            f"{s.model.sliding_window.window}-token sliding window, so a token beyond the window "
            "costs only kv_cache_bytes_per_token_beyond_window; kv_cache_bytes_per_token is the "
            "cost of a token inside the window (all layers)"
        )
    if fit.tp > s.model.kv_heads:
        notes.append(
            f"tensor parallel {fit.tp} exceeds the {s.model.kv_heads} KV heads: vLLM replicates "
            "KV heads, so each GPU stores one head's cache"
        )
    if fit.tp > 1 and "NVLink" not in s.gpu.interconnect.type:
        notes.append(
            f"{s.gpu.name} talks over {s.gpu.interconnect.type}: tensor-parallel all-reduces "
            "cost noticeable decode time (included in the estimate)"
        )
    return notes


def plan(req: PlanRequest, assumptions: OverheadAssumptions | None = None) -> Plan:
    """Size a vLLM deployment of ``req.model`` on ``req.gpus`` x ``req.gpu``."""
    model = get_model(req.model)
    gpu = get_gpu(req.gpu)
    max_len = _validate(req, model)
    a = assumptions or OverheadAssumptions()
    sizes = valid_tp_sizes(model, req.gpus)

    # max_num_seqs is per engine; concurrency is for the whole deployment, so the per-replica
    # share depends on the replica count, which depends on the TP size chosen.
    def setting_for(per_replica_seqs: int) -> _Setting:
        default_batched = 8192 if gpu.memory_mib >= _LARGE_GPU_MIB else 2048
        batched = req.max_num_batched_tokens or max(default_batched, per_replica_seqs)
        return _Setting(
            model,
            gpu,
            req.dtype,
            req.kv_cache_dtype,
            max_len,
            req.gpu_memory_utilization,
            per_replica_seqs,
            batched,
            a,
        )

    fit: _Fit | None = None
    s = setting_for(req.concurrency or DEFAULT_MAX_NUM_SEQS)
    for tp in sizes:
        replicas = req.gpus // tp
        per_replica = -(-req.concurrency // replicas) if req.concurrency else DEFAULT_MAX_NUM_SEQS
        s = setting_for(per_replica)
        candidate = _evaluate(s, tp)
        if candidate.sequences >= 1:
            fit = candidate
            break

    common = {
        "model": model.name,
        "gpu": gpu.name,
        "gpus": req.gpus,
        "dtype": req.dtype,
        "kv_cache_dtype": req.kv_cache_dtype,
        "max_model_len": max_len,
        "concurrency": req.concurrency,
        "gpu_memory_utilization": req.gpu_memory_utilization,
        "gpu_price_per_hour": req.gpu_price_per_hour,
        "weights_bytes": weight_bytes(model, req.dtype),
        "kv_cache_bytes_per_token": kv_bytes_per_token(model, req.kv_cache_dtype),
        "kv_cache_bytes_per_token_beyond_window": kv_bytes_per_token_global(
            model, req.kv_cache_dtype
        ),
        "kv_cache_bytes_per_sequence": kv_bytes_per_sequence(model, max_len, req.kv_cache_dtype),
        "assumptions": _assumption_text(s),
    }
    if fit is None:
        worst = _evaluate(s, sizes[-1])
        return Plan(
            **common,
            fits=False,
            tensor_parallel_size=worst.tp,
            data_parallel_size=0,
            unused_gpus=req.gpus,
            max_num_seqs=s.max_num_seqs,
            max_num_batched_tokens=s.batched_tokens,
            kv_cache_bytes_total=0,
            memory_per_gpu=worst.memory,
            max_concurrent_sequences=0,
            context_at_concurrency=None,
            throughput=None,
            reasons=_no_fit_reasons(s, worst, req, sizes),
            suggestions=_suggestions(s, req, sizes),
            notes=[],
        )

    replicas = req.gpus // fit.tp
    unused = req.gpus - replicas * fit.tp
    max_seqs = fit.sequences * replicas
    pool = fit.memory.kv_cache_bytes
    ctx_at_c = None
    if req.concurrency is not None:
        ctx_at_c = max_context_for(model, pool, s.max_num_seqs, req.kv_cache_dtype, fit.tp, max_len)
    avg = req.avg_context or min(DEFAULT_AVG_CONTEXT, max_len)
    batch = min(
        s.max_num_seqs, pool // kv_bytes_per_sequence(model, avg, req.kv_cache_dtype, fit.tp)
    )
    throughput = estimate_throughput(
        model,
        gpu,
        DecodeSetting(
            tp=fit.tp,
            replicas=replicas,
            gpus_paid=req.gpus,
            batch_per_replica=max(1, batch),
            avg_context=avg,
            max_model_len=max_len,
            weights_bytes_per_gpu=fit.memory.weights_bytes,
            kv_cache_dtype=req.kv_cache_dtype,
            dtype=req.dtype,
            gpu_price_per_hour=req.gpu_price_per_hour,
        ),
    )
    return Plan(
        **common,
        fits=True,
        tensor_parallel_size=fit.tp,
        data_parallel_size=replicas,
        unused_gpus=unused,
        max_num_seqs=s.max_num_seqs,
        max_num_batched_tokens=s.batched_tokens,
        kv_cache_bytes_total=pool * fit.tp * replicas,
        memory_per_gpu=fit.memory,
        max_concurrent_sequences=max_seqs,
        context_at_concurrency=ctx_at_c,
        throughput=throughput,
        reasons=[],
        suggestions=[],
        notes=_notes(s, fit, req, replicas, unused, max_seqs, ctx_at_c),
    )
