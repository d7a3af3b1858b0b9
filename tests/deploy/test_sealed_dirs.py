"""Sealed model directories: round trip, swaps, missing/extra blobs, wrong key, rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airlock.deploy.errors import (
    SealAuthenticationError,
    SealError,
    SealTrailingDataError,
    SealTruncatedError,
    WrongKeyError,
)
from airlock.deploy.sealed import MANIFEST_NAME, Kek, is_sealed_dir, rewrap, seal, unseal
from airlock.deploy.sealed._format import read_header


def _model_dir(root: Path) -> Path:
    src = root / "hf-model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_text('{"num_hidden_layers": 30}')
    (src / "model.safetensors").write_bytes(os.urandom(300_000))
    (src / "tokenizer" / "tokenizer.json").write_text("{}")
    (src / "empty.txt").write_bytes(b"")
    blobs = root / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_bytes(b"via symlink")
    (src / "linked.bin").symlink_to(blobs / "abc")  # HF cache snapshots are symlinks
    return src


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _body(path: Path) -> bytes:
    with path.open("rb") as fh:
        offset = read_header(fh).body_offset
    return path.read_bytes()[offset:]


def _no_staging(parent: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in parent.iterdir())


def test_directory_round_trip_hides_names(tmp_path: Path, kek: Kek) -> None:
    src = _model_dir(tmp_path)
    assert seal(src, tmp_path / "sealed", kek, chunk_size=65536) == 5
    assert is_sealed_dir(tmp_path / "sealed")
    stored = {p.name for p in (tmp_path / "sealed").rglob("*")}
    assert "config.json" not in stored
    assert "model.safetensors" not in stored
    assert unseal(tmp_path / "sealed", tmp_path / "out", kek) == 5
    assert _tree(tmp_path / "out") == _tree(src)


def test_swapped_blobs_are_detected(tmp_path: Path, kek: Kek) -> None:
    seal(_model_dir(tmp_path), tmp_path / "sealed", kek)
    a, b = tmp_path / "sealed/blobs/000000.seal", tmp_path / "sealed/blobs/000001.seal"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(SealAuthenticationError, match="swapped or moved"):
        unseal(tmp_path / "sealed", tmp_path / "out", kek)
    assert not (tmp_path / "out").exists()
    assert _no_staging(tmp_path)


def test_blob_from_another_sealed_directory_is_detected(tmp_path: Path, kek: Kek) -> None:
    src = _model_dir(tmp_path)
    seal(src, tmp_path / "one", kek)
    seal(src, tmp_path / "two", kek)
    blob = "blobs/000001.seal"
    (tmp_path / "one" / blob).write_bytes((tmp_path / "two" / blob).read_bytes())
    with pytest.raises(SealAuthenticationError):
        unseal(tmp_path / "one", tmp_path / "out", kek)
    assert not (tmp_path / "out").exists()


def test_missing_and_extra_blobs(tmp_path: Path, kek: Kek) -> None:
    seal(_model_dir(tmp_path), tmp_path / "sealed", kek)
    extra = tmp_path / "sealed/blobs/999999.seal"
    extra.write_bytes(b"x")
    with pytest.raises(SealTrailingDataError):
        unseal(tmp_path / "sealed", tmp_path / "out", kek)
    extra.unlink()
    (tmp_path / "sealed/blobs/000002.seal").unlink()
    with pytest.raises(SealTruncatedError):
        unseal(tmp_path / "sealed", tmp_path / "out", kek)
    assert not (tmp_path / "out").exists()
    assert _no_staging(tmp_path)


def test_tampered_blob_midway_leaves_no_partial_directory(tmp_path: Path, kek: Kek) -> None:
    seal(_model_dir(tmp_path), tmp_path / "sealed", kek)
    last = tmp_path / "sealed/blobs/000004.seal"
    raw = bytearray(last.read_bytes())
    raw[-3] ^= 4
    last.write_bytes(bytes(raw))
    with pytest.raises(SealAuthenticationError):
        unseal(tmp_path / "sealed", tmp_path / "out", kek)
    assert not (tmp_path / "out").exists()
    assert _no_staging(tmp_path)


def test_wrong_key_and_existing_output(tmp_path: Path, kek: Kek, other_kek: Kek) -> None:
    seal(_model_dir(tmp_path), tmp_path / "sealed", kek)
    with pytest.raises(WrongKeyError):
        unseal(tmp_path / "sealed", tmp_path / "out", other_kek)
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(SealError, match="already exists"):
        unseal(tmp_path / "sealed", tmp_path / "out", kek)
    with pytest.raises(SealError, match="already exists"):
        seal(_model_dir(tmp_path / "again"), tmp_path / "sealed", kek)


def test_special_files_are_refused(tmp_path: Path, kek: Kek) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(SealError, match="not a regular file"):
        seal(src, tmp_path / "sealed", kek)
    assert not (tmp_path / "sealed").exists()
    assert _no_staging(tmp_path)


def test_directory_rotation_in_place_and_resumable(
    tmp_path: Path, kek: Kek, other_kek: Kek
) -> None:
    src = _model_dir(tmp_path)
    seal(src, tmp_path / "sealed", kek)
    bodies = {p: _body(p) for p in (tmp_path / "sealed").rglob("*.seal")}
    assert rewrap(tmp_path / "sealed", None, kek, other_kek) == 6  # 5 blobs + manifest
    assert rewrap(tmp_path / "sealed", None, kek, other_kek) == 0  # already rotated
    assert {p: _body(p) for p in bodies} == bodies  # ciphertext untouched
    with pytest.raises(WrongKeyError):
        unseal(tmp_path / "sealed", tmp_path / "old", kek)
    unseal(tmp_path / "sealed", tmp_path / "new", other_kek)
    assert _tree(tmp_path / "new") == _tree(src)
    with pytest.raises(SealError, match="in place"):
        rewrap(tmp_path / "sealed", tmp_path / "elsewhere", kek, other_kek)
    (tmp_path / "sealed" / MANIFEST_NAME).unlink()
    with pytest.raises(SealError, match="not a sealed directory"):
        rewrap(tmp_path / "sealed", None, kek, other_kek)
