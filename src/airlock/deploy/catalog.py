"""Typed model and GPU catalogs, loaded from the bundled YAML data files.

The data lives in ``airlock/deploy/data/{models,gpus}.yaml`` (values cited there); this
module only validates it. Loading is explicit (no work at import time) and cached per
process because the files are read-only package data.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from airlock.deploy.errors import CatalogError, UnknownGpuError, UnknownModelError

__all__ = [
    "GpuSpec",
    "Interconnect",
    "ModelSpec",
    "SlidingWindow",
    "get_gpu",
    "get_model",
    "load_gpus",
    "load_models",
]

_DATA_PACKAGE = "airlock.deploy.data"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlidingWindow(_Frozen):
    """Local/global attention layout: every ``global_every``-th layer (1-based) is global,
    the others attend to the last ``window`` tokens only."""

    window: int = Field(gt=0)
    global_every: int = Field(ge=2)


class ModelSpec(_Frozen):
    name: str
    display_name: str
    hf_repo: str
    architecture: str
    parameters: int = Field(gt=0)
    extra_parameters: int = Field(ge=0)
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool
    max_context: int = Field(gt=0)
    sliding_window: SlidingWindow | None
    license: str
    quality_notes: str
    price_notes: str
    sources: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.attention_heads % self.kv_heads:
            raise ValueError("attention_heads must be a multiple of kv_heads (GQA groups)")
        if "config" not in self.sources:
            raise ValueError("sources.config (the published config.json) is required")
        return self

    @property
    def global_layers(self) -> int:
        """Layers that keep every token of the context in the KV cache."""
        if self.sliding_window is None:
            return self.layers
        return self.layers // self.sliding_window.global_every

    @property
    def local_layers(self) -> int:
        """Sliding-window layers (keep at most ``window`` tokens)."""
        return self.layers - self.global_layers

    @property
    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_parameters(self) -> int:
        """Separate output-projection parameters (0 when tied to the embedding)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size


class Interconnect(_Frozen):
    type: str
    bandwidth_gb_s: float = Field(gt=0)


class GpuSpec(_Frozen):
    name: str
    display_name: str
    memory_gb: float = Field(gt=0)
    memory_mib: int = Field(gt=0)
    memory_type: str
    bandwidth_gb_s: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0)
    fp8_tflops: float | None = Field(default=None, gt=0)
    int8_tops: float = Field(gt=0)
    interconnect: Interconnect
    sources: list[str] = Field(min_length=1)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024


class _ModelFile(_Frozen):
    models: list[ModelSpec]


class _GpuFile(_Frozen):
    gpus: list[GpuSpec]


def _read(filename: str) -> Any:
    try:
        text = resources.files(_DATA_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise CatalogError(f"catalog data file {filename} is missing") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog data file {filename} is not valid YAML") from exc


def _where(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def _index(items: list[Any], filename: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if item.name in out:
            raise CatalogError(f"duplicate name {item.name!r} in {filename}")
        out[item.name] = item
    return out


@functools.cache
def load_models() -> dict[str, ModelSpec]:
    """All catalog models by name (validated; cached)."""
    try:
        parsed = _ModelFile.model_validate(_read("models.yaml"))
    except ValidationError as exc:
        raise CatalogError(f"models.yaml does not validate: {_where(exc)}") from exc
    return _index(list(parsed.models), "models.yaml")


@functools.cache
def load_gpus() -> dict[str, GpuSpec]:
    """All catalog GPUs by name (validated; cached)."""
    try:
        parsed = _GpuFile.model_validate(_read("gpus.yaml"))
    except ValidationError as exc:
        raise CatalogError(f"gpus.yaml does not validate: {_where(exc)}") from exc
    return _index(list(parsed.gpus), "gpus.yaml")


def get_model(name: str) -> ModelSpec:
    models = load_models()
    try:
        return models[name]
    except KeyError:
        raise UnknownModelError(name, list(models)) from None


def get_gpu(name: str) -> GpuSpec:
    gpus = load_gpus()
    try:
        return gpus[name]
    except KeyError:
        raise UnknownGpuError(name, list(gpus)) from None
