"""Launch flags (the planner's and the launcher's) checked by vLLM's own argument parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.deploy.launcher_flags import LaunchFlagError, build_command
from airlock.deploy.launcher_validate import parse_many_with_vllm, parse_with_vllm
from airlock.deploy.planner import make_request, plan
from airlock.deploy.vllm_env import VllmEnv
from airlock.deploy.vllm_flags import LoraModule, VllmLaunchSpec, launch_spec_for
from tests.integration.conftest import require_vllm_setup

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

PLANS = [
    # The commonly recommended launch, and a spread of dtypes / TP sizes / models.
    {"model": "llama-3.3-70b-instruct", "gpu": "a100-80gb", "gpus": 2, "dtype": "fp8",
     "max_model_len": 32768},
    {"model": "qwen2.5-7b-instruct", "gpu": "l4-24gb", "dtype": "int4-awq"},
    {"model": "mistral-small-3-24b-instruct", "gpu": "h100-80gb", "dtype": "bf16"},
    {"model": "gemma-3-27b-it", "gpu": "a100-40gb", "gpus": 2, "kv_cache_dtype": "fp8"},
    {"model": "smollm2-135m-instruct", "gpu": "rtx4090-24gb", "max_model_len": 2048},
]  # fmt: skip


@pytest.fixture(scope="module")
def vllm_env() -> VllmEnv:
    return require_vllm_setup()[0]


def _specs() -> list[VllmLaunchSpec]:
    specs = [launch_spec_for(plan(make_request(**p)), model_path="/models/m") for p in PLANS]
    lora = launch_spec_for(
        plan(make_request(model="llama-3.1-8b-instruct", gpu="a10g-24gb", max_model_len=8192)),
        model_path="/models/llama",
        lora_modules=(LoraModule(name="legal", path="/adapters/legal"),),
        max_lora_rank=16,
    )
    return [*specs, lora]


def test_every_planned_launch_parses_with_the_values_planned(vllm_env: VllmEnv) -> None:
    specs = _specs()
    launcher_argvs = [
        build_command(
            python=vllm_env.python, model_dir=Path("/models/m"), host="127.0.0.1",
            port=8100 + i, served_model_name=s.served_model_name, engine_args=s.argv(),
        ).argv
        for i, s in enumerate(specs)
    ]  # fmt: skip
    results = parse_many_with_vllm(vllm_env, [s.argv() for s in specs] + launcher_argvs)
    assert [r.error for r in results] == [None] * len(results)
    for spec, result in zip(specs, results[: len(specs)], strict=True):
        args = result.args
        assert args is not None
        assert args["model"] == spec.model
        assert args["served_model_name"] == [spec.served_model_name]
        assert args["max_model_len"] == spec.max_model_len
        assert args["max_num_seqs"] == spec.max_num_seqs
        assert args["max_num_batched_tokens"] == spec.max_num_batched_tokens
        assert args["tensor_parallel_size"] == spec.tensor_parallel_size
        assert args["quantization"] == spec.quantization
        assert args["dtype"] == spec.dtype
        assert args["kv_cache_dtype"] == spec.kv_cache_dtype
        assert args["enable_chunked_prefill"] is spec.enable_chunked_prefill
        assert args["enable_prefix_caching"] is spec.enable_prefix_caching
        assert args["enable_log_requests"] is False
        assert args["disable_uvicorn_access_log"] is True
        assert args["api_key"] is None  # the key travels in VLLM_API_KEY
        assert args["enable_lora"] is (bool(spec.lora_modules) or None)
    # The launcher's command for the same plans: its own bind flags win, content logging off.
    for i, result in enumerate(results[len(specs) :]):
        args = result.args
        assert args is not None
        assert args["model"] == "/models/m"
        assert args["port"] == 8100 + i
        assert args["enable_log_requests"] is False
        assert args["enable_log_outputs"] is False
        assert args["max_log_len"] == 0
        assert args["log_error_stack"] is False


def test_the_lora_launch_passes_the_adapter(vllm_env: VllmEnv) -> None:
    args = parse_with_vllm(vllm_env, _specs()[-1].argv())
    assert "legal" in str(args["lora_modules"])
    assert args["max_lora_rank"] == 16


BAD = [
    (["--model", "/m", "--no-such-flag", "1"], "unrecognized arguments: --no-such-flag"),
    (["--model", "/m", "--max-model-len", "lots"], "max-model-len"),
    (["--model", "/m", "--enable-log-outputs"], "requires --enable-log-requests"),
    (["--model", "/m", "--dtype", "int3"], "dtype"),
]


def test_vllm_rejects_bad_flags_and_says_which(vllm_env: VllmEnv) -> None:
    # One interpreter for all cases: importing vLLM is the slow part.
    results = parse_many_with_vllm(vllm_env, [argv for argv, _ in BAD])
    for (_, complaint), result in zip(BAD, results, strict=True):
        assert result.args is None
        assert result.error is not None
        assert complaint in result.error
    with pytest.raises(LaunchFlagError, match="unrecognized arguments"):
        parse_with_vllm(vllm_env, BAD[0][0])
