"""The real GGUF -> Hugging Face conversion, run with the vLLM venv's transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airlock.deploy.convert import MARKER_NAME
from airlock.deploy.vllm_env import find_model_dir, locate_smollm2_gguf, run_conversion
from tests.integration.conftest import require_vllm_setup

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]


def test_bundled_smollm2_converts_to_a_servable_directory(tmp_path: Path) -> None:
    env, _ = require_vllm_setup()
    gguf = locate_smollm2_gguf()
    out = tmp_path / "smollm2-hf"
    result = run_conversion(env, gguf, out)
    assert find_model_dir(out) == out
    assert result["architecture"] == "LlamaForCausalLM"
    assert result["dtype"] == "bfloat16"
    # SmolLM2-135M: 134.5M parameters (tied embeddings counted once).
    assert 130_000_000 < int(str(result["parameters"])) < 140_000_000
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config  # the GGUF quantizer was dropped
    assert config["num_hidden_layers"] == 30
    assert config["num_key_value_heads"] == 3
    assert (out / "tokenizer.json").is_file()
    weights = out / "model.safetensors"
    # bf16: 2 bytes per parameter (+ a small header).
    assert 2 * 134_000_000 < weights.stat().st_size < 2 * 136_000_000
    assert not (tmp_path / "smollm2-hf.partial").exists()
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["source_size"] == gguf.stat().st_size

    # A second run finds it up to date and leaves the files alone.
    mtime = weights.stat().st_mtime_ns
    again = run_conversion(env, gguf, out)
    assert again["source_sha256"] == marker["source_sha256"]
    assert weights.stat().st_mtime_ns == mtime
