"""The vLLM OpenAI-server launch for a plan, as one typed structure.

:class:`VllmLaunchSpec` is the single source of the flags; the command-line, docker-compose
and Kubernetes renderers (``airlock.deploy.artefacts``) and the launcher all take their
argv from :meth:`VllmLaunchSpec.argv`, so validating that list against vLLM's own argument
parser validates every artefact.

Compliance defaults baked in (not options):

* request logging off: ``--no-enable-log-requests`` (vLLM >= 0.10.2 replaced
  ``--disable-log-requests`` by the boolean ``--enable-log-requests``, default off; we say
  it explicitly so a changed default cannot turn prompt logging on) and
  ``--disable-uvicorn-access-log`` (airlock keeps its own metadata-only records);
* the API key comes from the ``VLLM_API_KEY`` environment variable, filled from a secret,
  never from ``--api-key`` (argv is visible in ``ps`` and container specs);
* usage telemetry off (``VLLM_NO_USAGE_STATS=1``, ``DO_NOT_TRACK=1``);
* bound to loopback unless told otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airlock.deploy.errors import PlanInputError
from airlock.deploy.plan_types import Plan

__all__ = [
    "API_KEY_ENV",
    "VLLM_MODULE",
    "LoraModule",
    "VllmLaunchSpec",
    "launch_spec_for",
    "parse_lora",
    "telemetry_off_env",
    "vllm_argv",
]

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
API_KEY_ENV = "VLLM_API_KEY"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


def telemetry_off_env() -> dict[str, str]:
    """Environment that keeps vLLM from reporting usage statistics."""
    return {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


class LoraModule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    path: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("LoRA name must be 1-128 characters of letters, digits, ._:/-")
        return v


def parse_lora(text: str) -> LoraModule:
    """``NAME=PATH`` as vLLM's ``--lora-modules`` takes it."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise PlanInputError("LoRA adapters are given as NAME=PATH", param="lora")
    try:
        return LoraModule(name=name, path=path)
    except ValueError as exc:
        raise PlanInputError(f"invalid LoRA adapter name {name!r}", param="lora") from exc


class VllmLaunchSpec(BaseModel):
    """Every flag airlock passes to ``python -m vllm.entrypoints.openai.api_server``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_model_len: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)
    max_num_batched_tokens: int = Field(gt=0)
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    dtype: Literal["auto", "bfloat16", "float16"] = "bfloat16"
    quantization: Literal["fp8", "awq_marlin"] | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    tensor_parallel_size: int = Field(default=1, ge=1)
    data_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    lora_modules: tuple[LoraModule, ...] = ()
    max_lora_rank: int | None = Field(default=None, gt=0)

    @field_validator("served_model_name")
    @classmethod
    def _served(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("served model name must be 1-128 characters of letters, digits, ._:/-")
        return v

    def argv(self, *, include_data_parallel: bool = True) -> list[str]:
        """The flags (without the interpreter and module), in a stable order."""
        args = [
            "--model", self.model,
            "--served-model-name", self.served_model_name,
            "--host", self.host,
            "--port", str(self.port),
            "--max-model-len", str(self.max_model_len),
            "--max-num-seqs", str(self.max_num_seqs),
            "--max-num-batched-tokens", str(self.max_num_batched_tokens),
            "--enable-chunked-prefill" if self.enable_chunked_prefill
            else "--no-enable-chunked-prefill",
            "--enable-prefix-caching" if self.enable_prefix_caching
            else "--no-enable-prefix-caching",
            "--dtype", self.dtype,
        ]  # fmt: skip
        if self.quantization is not None:
            args += ["--quantization", self.quantization]
        args += [
            "--kv-cache-dtype", self.kv_cache_dtype,
            "--tensor-parallel-size", str(self.tensor_parallel_size),
        ]  # fmt: skip
        if include_data_parallel and self.data_parallel_size > 1:
            args += ["--data-parallel-size", str(self.data_parallel_size)]
        args += [
            "--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}",
            "--no-enable-log-requests",
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if self.lora_modules:
            args += ["--enable-lora", "--max-loras", str(len(self.lora_modules))]
            if self.max_lora_rank is not None:
                args += ["--max-lora-rank", str(self.max_lora_rank)]
            args += ["--lora-modules", *(f"{m.name}={m.path}" for m in self.lora_modules)]
        return args

    def command(self, python: str = "python") -> list[str]:
        """The whole command: interpreter, ``-m`` module, flags."""
        return [python, "-m", VLLM_MODULE, *self.argv()]


def vllm_argv(spec: VllmLaunchSpec) -> list[str]:
    """The argv list to validate against vLLM's parser (same as ``spec.argv()``)."""
    return spec.argv()


_DTYPE_FLAGS: Mapping[
    str, tuple[Literal["bfloat16", "float16"], Literal["fp8", "awq_marlin"] | None]
] = MappingProxyType(
    {
        "bf16": ("bfloat16", None),
        "fp8": ("bfloat16", "fp8"),
        # AWQ kernels take fp16 activations; the quantization method is read from the checkpoint
        # but named explicitly so a non-AWQ checkpoint fails at start instead of loading 16-bit.
        "int4-awq": ("float16", "awq_marlin"),
    }
)


def launch_spec_for(
    plan: Plan,
    *,
    model_path: str,
    served_model_name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    lora_modules: tuple[LoraModule, ...] = (),
    max_lora_rank: int | None = None,
) -> VllmLaunchSpec:
    """The launch for a plan that fits. ``model_path`` is a local model directory (or a Hub
    id where downloads are allowed)."""
    if not plan.fits:
        raise PlanInputError(
            f"{plan.model} does not fit on {plan.gpus} x {plan.gpu}; no launch to render",
            param="model",
        )
    dtype, quantization = _DTYPE_FLAGS[plan.dtype]
    try:
        return VllmLaunchSpec(
            model=model_path,
            served_model_name=served_model_name or plan.model,
            host=host,
            port=port,
            max_model_len=plan.max_model_len,
            max_num_seqs=plan.max_num_seqs,
            max_num_batched_tokens=plan.max_num_batched_tokens,
            dtype=dtype,
            quantization=quantization,
            kv_cache_dtype=plan.kv_cache_dtype,
            tensor_parallel_size=plan.tensor_parallel_size,
            data_parallel_size=plan.data_parallel_size,
            gpu_memory_utilization=plan.gpu_memory_utilization,
            lora_modules=lora_modules,
            max_lora_rank=max_lora_rank,
        )
    except ValueError as exc:
        raise PlanInputError(f"invalid launch setting: {exc}") from exc
