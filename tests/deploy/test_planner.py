"""Planner figures against arithmetic done by hand (written out in each test)."""

from __future__ import annotations

import pytest

from airlock.deploy.catalog import get_gpu, get_model
from airlock.deploy.errors import PlanInputError, UnknownGpuError, UnknownModelError
from airlock.deploy.planner import make_request, max_context_for, plan, valid_tp_sizes
from airlock.deploy.sizing import (
    GIB,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    kv_bytes_per_token_global,
    weight_bytes,
)

MIB = 1024 * 1024

# ---------------------------------------------------------------- KV cache per token


def test_kv_bytes_per_token_llama_70b() -> None:
    m = get_model("llama-3.3-70b-instruct")
    assert kv_bytes_per_token(m, "auto") == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kv_bytes_per_token(m, "fp8") == 2 * 80 * 8 * 128 * 1 == 163_840
    # Per GPU at TP 2: 4 of the 8 KV heads each.
    assert kv_bytes_per_token(m, "auto", tp=2) == 2 * 80 * 4 * 128 * 2


def test_kv_bytes_per_token_qwen_7b_and_mistral() -> None:
    assert kv_bytes_per_token(get_model("qwen2.5-7b-instruct"), "auto") == 2 * 28 * 4 * 128 * 2
    assert kv_bytes_per_token(get_model("mistral-small-3-24b-instruct"), "auto") == 163_840
    assert kv_bytes_per_token(get_model("smollm2-135m-instruct"), "auto") == 2 * 30 * 3 * 64 * 2


def test_kv_bytes_gemma3_sliding_window() -> None:
    m = get_model("gemma-3-27b-it")
    # All 62 layers while a token is inside the 1024-token window ...
    assert kv_bytes_per_token(m, "auto") == 2 * 62 * 16 * 128 * 2 == 507_904
    # ... only the 10 global layers beyond it.
    assert kv_bytes_per_token_global(m, "auto") == 2 * 10 * 16 * 128 * 2 == 81_920
    per_layer_token = 2 * 16 * 128 * 2
    # 32K context: 10 global layers hold 32768 tokens, 52 local layers hold 1024.
    assert kv_bytes_per_sequence(m, 32768, "auto") == per_layer_token * (
        10 * 32768 + 52 * 1024
    ) == 3_120_562_176  # fmt: skip
    # Below the window every layer holds every token.
    assert kv_bytes_per_sequence(m, 512, "auto") == 512 * 507_904
    # Sequences are allocated in 16-token blocks: 1000 tokens reserve 1008.
    assert kv_bytes_per_sequence(m, 1000, "auto") == 1008 * 507_904


def test_kv_heads_replicate_when_tp_exceeds_them() -> None:
    m = get_model("qwen2.5-7b-instruct")  # 4 KV heads
    # TP 8 is invalid for 28 attention heads, but the KV rule alone would replicate.
    assert kv_bytes_per_token(m, "auto", tp=4) == 2 * 28 * 1 * 128 * 2
    assert kv_bytes_per_token(get_model("llama-3.3-70b-instruct"), "auto", tp=16) == (
        2 * 80 * 1 * 128 * 2
    )


# ---------------------------------------------------------------- weights


def test_weight_bytes_llama_70b_each_dtype() -> None:
    m = get_model("llama-3.3-70b-instruct")
    params = 70_553_706_496
    embed = 128_256 * 8_192  # embedding; the LM head (untied) is the same size
    linear = params - 2 * embed  # 68,452,360,192 quantizable weights
    assert weight_bytes(m, "bf16") == params * 2 == 141_107_412_992
    assert weight_bytes(m, "fp8") == linear * 1 + 2 * embed * 2 == 72_655_052_800
    # AWQ: 0.5 B/weight + (2 B fp16 scale + 0.5 B zero) per 128 weights = 133/256 B/weight.
    assert weight_bytes(m, "int4-awq") == linear * 133 // 256 + 2 * embed * 2 == 39_765_832_864


def test_weight_bytes_gemma3_keeps_vision_and_tied_embedding_16bit() -> None:
    m = get_model("gemma-3-27b-it")
    embed = 262_208 * 5_376  # tied: counted once
    vision = 423_060_336
    linear = 27_432_406_640 - embed - vision
    assert weight_bytes(m, "bf16") == 27_432_406_640 * 2
    assert weight_bytes(m, "fp8") == linear + (embed + vision) * 2 == 29_265_097_184


def test_weight_bytes_qwen_7b() -> None:
    m = get_model("qwen2.5-7b-instruct")
    embed = 152_064 * 3_584
    assert weight_bytes(m, "bf16") == 7_615_616_512 * 2
    assert weight_bytes(m, "fp8") == (7_615_616_512 - 2 * embed) + 2 * embed * 2


# ---------------------------------------------------------------- tensor parallel size


def test_valid_tp_sizes_follow_the_heads() -> None:
    assert valid_tp_sizes(get_model("llama-3.3-70b-instruct"), 64) == [1, 2, 4, 8, 16, 32, 64]
    assert valid_tp_sizes(get_model("qwen2.5-7b-instruct"), 64) == [1, 2, 4]  # 28 heads
    assert valid_tp_sizes(get_model("smollm2-135m-instruct"), 8) == [1]  # 9 heads
    assert valid_tp_sizes(get_model("gemma-3-27b-it"), 8) == [1, 2, 4, 8]
    assert valid_tp_sizes(get_model("llama-3.1-8b-instruct"), 3) == [1, 2]


def test_smallest_tp_llama_70b_bf16_on_a100_80gb() -> None:
    # Usable per GPU: 0.9 * 81920 MiB = 72 GiB. bf16 weights 131.4 GiB do not fit one GPU;
    # at TP 2 each GPU holds 65.7 GiB + ~1.5 GiB activations + 1.5 GiB runtime, leaving
    # ~3.6 GiB, enough for one 8K sequence (8192 * 160 KiB per GPU = 1.25 GiB).
    p = plan(
        make_request(model="llama-3.3-70b-instruct", gpu="a100-80gb", gpus=8, max_model_len=8192)
    )
    assert p.fits
    assert p.tensor_parallel_size == 2
    assert p.data_parallel_size == 4
    assert p.weights_bytes == 141_107_412_992
    assert p.memory_per_gpu.weights_bytes == 141_107_412_992 // 2


def test_smallest_tp_gemma3_bf16_on_a100_40gb() -> None:
    # 54.9 GB of bf16 weights against 0.9 * 40 GiB = 36 GiB usable -> TP 2 (25.5 GiB each).
    p = plan(make_request(model="gemma-3-27b-it", gpu="a100-40gb", gpus=4, max_model_len=8192))
    assert (p.fits, p.tensor_parallel_size, p.data_parallel_size) == (True, 2, 2)


def test_smallest_tp_qwen_7b_is_one_gpu_of_an_l4() -> None:
    # 15.2 GB of weights < 0.9 * 23034 MiB = 20.2 GiB; 3 GPUs -> 3 replicas of TP 1.
    p = plan(make_request(model="qwen2.5-7b-instruct", gpu="l4-24gb", gpus=3, max_model_len=8192))
    assert (p.tensor_parallel_size, p.data_parallel_size, p.unused_gpus) == (1, 3, 0)
    assert p.kv_cache_bytes_per_token == 57_344


# ---------------------------------------------------------------- the worked example


def test_worked_example_llama_70b_fp8_two_h100_32k_256_sequences() -> None:
    p = plan(
        make_request(
            model="llama-3.3-70b-instruct",
            gpu="h100-80gb",
            gpus=2,
            dtype="fp8",
            max_model_len=32768,
            concurrency=256,
        )
    )
    total = 81_559 * MIB
    usable = int(total * 0.9)
    weights = 72_655_052_800 // 2
    # Profiling pass: 8192 tokens * (2 * 28672 / 2 + 4 * 8192) * 2 B, plus fp32 logits
    # (and one sampler copy) for 256 rows of the 128256-token vocabulary.
    act = 8192 * (28_672 + 4 * 8192) * 2 + 256 * 128_256 * 4 * 2
    runtime = 3 * GIB // 2
    kv_pool = usable - weights - act - runtime
    per_seq = 32768 * (2 * 80 * 4 * 128 * 2)  # 4 KV heads per GPU, bf16 cache
    assert p.memory_per_gpu.activation_bytes == act == 1_269_301_248
    assert p.memory_per_gpu.kv_cache_bytes == kv_pool
    assert p.tensor_parallel_size == 2
    assert p.max_concurrent_sequences == kv_pool // per_seq == 7
    # With all 256 running: kv_pool / 256 / (163840 B per token per GPU) = 900 tokens,
    # rounded down to whole 16-token blocks.
    assert p.context_at_concurrency == 896
    assert any("only 7 of the 256" in n for n in p.notes)


def test_worked_example_with_fp8_kv_cache_doubles_capacity() -> None:
    p = plan(
        make_request(
            model="llama-3.3-70b-instruct",
            gpu="h100-80gb",
            gpus=2,
            dtype="fp8",
            kv_cache_dtype="fp8",
            max_model_len=32768,
            concurrency=256,
        )
    )
    assert p.max_concurrent_sequences == p.memory_per_gpu.kv_cache_bytes // (32768 * 81_920) == 14
    assert p.context_at_concurrency == 1792


def test_max_context_for_is_the_largest_block_multiple_that_fits() -> None:
    m = get_model("llama-3.1-8b-instruct")
    per_token = 131_072
    pool = 100 * 16 * per_token + 5  # room for exactly 100 blocks of one sequence
    assert max_context_for(m, pool, 1, "auto", 1, 131072) == 1600
    assert max_context_for(m, pool, 2, "auto", 1, 131072) == 800
    assert max_context_for(m, pool, 1, "auto", 1, 1000) == 992  # capped by the limit
    assert max_context_for(m, 0, 1, "auto", 1, 1000) == 0


# ---------------------------------------------------------------- throughput and cost


def test_decode_roofline_single_stream_is_weights_over_bandwidth() -> None:
    p = plan(
        make_request(
            model="llama-3.1-8b-instruct",
            gpu="h100-80gb",
            max_model_len=8192,
            concurrency=1,
            avg_context=1024,
            gpu_price_per_hour=2.0,
        )
    )
    t = p.throughput
    assert t is not None
    bytes_per_step = 8_030_261_248 * 2 + 1024 * (2 * 32 * 8 * 128 * 2)  # weights + one KV
    step = bytes_per_step / 3350e9
    assert t.decode_bound == "memory bandwidth"
    assert t.decode_batch_per_replica == 1
    assert t.decode_tokens_per_second == pytest.approx(1 / step, rel=1e-12)
    assert t.cost_per_million_output_tokens_usd == pytest.approx(2.0 / (3600 / step) * 1e6)
    # Prefill: 989 TFLOPS / (2 * 7.50e9 matmul params + attention over 512 tokens).
    flops = 2 * (8_030_261_248 - 128_256 * 4096) + 4 * 32 * 128 * 32 * 512
    assert t.prefill_tokens_per_second == pytest.approx(989e12 / flops)


def test_large_int4_batches_become_compute_bound() -> None:
    p = plan(
        make_request(
            model="llama-3.3-70b-instruct",
            gpu="a100-80gb",
            gpus=2,
            dtype="int4-awq",
            max_model_len=8192,
            avg_context=512,
        )
    )
    assert p.throughput is not None
    assert p.throughput.decode_bound == "compute"
    # AWQ runs W4A16 kernels: the matmuls run at the A100's bf16 rate.
    assert p.throughput.compute_tflops_per_gpu == 312
    assert any("AWQ" in n for n in p.notes)


def test_fp8_on_ampere_is_weight_only() -> None:
    p = plan(make_request(model="llama-3.1-8b-instruct", gpu="a100-80gb", dtype="fp8"))
    assert p.throughput is not None
    assert p.throughput.compute_tflops_per_gpu == get_gpu("a100-80gb").bf16_tflops
    assert any("no FP8 tensor cores" in n for n in p.notes)


# ---------------------------------------------------------------- does not fit


def test_does_not_fit_says_why_and_what_would() -> None:
    p = plan(
        make_request(model="llama-3.3-70b-instruct", gpu="l4-24gb", gpus=2, max_model_len=8192)
    )
    assert not p.fits
    assert p.max_concurrent_sequences == 0
    assert p.throughput is None
    assert any("65.7 GiB of bf16 weights" in r for r in p.reasons)
    text = " | ".join(p.suggestions)
    assert "x l4-24gb (tensor parallel" in text  # more GPUs
    assert "h200-141gb" in text  # a bigger GPU


def test_too_long_a_context_suggests_a_shorter_one_or_more_gpus() -> None:
    # fp8 70B on one H100: 67.7 GiB of weights leave ~0.9 GiB for KV, far less than one
    # 128K sequence (131072 * 320 KiB = 40 GiB). int4 (37 GiB of weights) would leave
    # ~33 GiB: still short of 40 GiB, so it is not suggested on its own.
    p = plan(make_request(model="llama-3.3-70b-instruct", gpu="h100-80gb", dtype="fp8"))
    assert not p.fits
    assert "left for the KV cache" in p.reasons[0]
    assert any(s.startswith("--max-model-len ") for s in p.suggestions)
    assert any(s.startswith("use 2 x h100-80gb") for s in p.suggestions)
    assert not any(s.startswith("--dtype") for s in p.suggestions)


def test_smaller_dtype_is_suggested_when_it_fits() -> None:
    # bf16 weights 131.4 GiB > 0.9 * 140.4 GiB usable on one H200; fp8 (67.7 GiB) fits.
    p = plan(make_request(model="llama-3.3-70b-instruct", gpu="h200-141gb", max_model_len=8192))
    assert not p.fits
    assert any(s.startswith("--dtype fp8: fits at tensor parallel 1") for s in p.suggestions)


def test_heads_limit_is_explained_when_more_gpus_cannot_help() -> None:
    # At 20 % utilisation an L4 offers 4.5 GiB; even TP 4 (3.5 GiB of weights each plus
    # overheads) does not fit, and 28 attention heads rule out TP 8.
    p = plan(
        make_request(model="qwen2.5-7b-instruct", gpu="l4-24gb", gpus=8, gpu_memory_utilization=0.2)
    )
    assert not p.fits
    assert p.tensor_parallel_size == 4
    assert any("at most 4 GPUs can share one copy" in r for r in p.reasons)


def test_gpus_not_a_power_of_two_leave_gpus_unused() -> None:
    p = plan(
        make_request(
            model="llama-3.3-70b-instruct",
            gpu="h100-80gb",
            gpus=3,
            dtype="fp8",
            max_model_len=32768,
        )
    )
    assert (p.tensor_parallel_size, p.data_parallel_size, p.unused_gpus) == (2, 1, 1)
    assert any("1 GPU(s) unused" in n for n in p.notes)


def test_smollm2_never_shards_its_nine_heads() -> None:
    p = plan(make_request(model="smollm2-135m-instruct", gpu="l4-24gb", gpus=4))
    assert (p.tensor_parallel_size, p.data_parallel_size) == (1, 4)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"dtype": "fp4"}, "dtype must be one of bf16, fp8, int4-awq"),
        ({"kv_cache_dtype": "int8"}, "kv_cache_dtype must be one of auto, fp8"),
        ({"gpus": 0}, "gpus must be between 1 and 64"),
        ({"gpus": 65}, "gpus must be between 1 and 64"),
        ({"max_model_len": 8}, "at least 16"),
        ({"max_model_len": 200_000}, "exceeds llama-3.1-8b-instruct's maximum context 131072"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"gpu_memory_utilization": 0.0}, "(0, 1]"),
        ({"gpu_memory_utilization": 1.5}, "(0, 1]"),
        ({"gpu_price_per_hour": -1.0}, "positive"),
        ({"avg_context": 10_000, "max_model_len": 4096}, "avg_context"),
        ({"gpus": "two"}, "gpus"),
    ],
)
def test_bad_inputs_raise_plan_input_error(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(PlanInputError) as err:
        plan(make_request(**{"model": "llama-3.1-8b-instruct", "gpu": "h100-80gb", **fields}))
    assert fragment in err.value.message
    assert err.value.status_code == 400


def test_unknown_model_and_gpu() -> None:
    with pytest.raises(UnknownModelError):
        plan(make_request(model="gpt-5", gpu="h100-80gb"))
    with pytest.raises(UnknownGpuError, match="valid names: a100-40gb"):
        plan(make_request(model="llama-3.1-8b-instruct", gpu="tpu-v5"))
