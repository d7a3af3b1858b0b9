"""Sealed single files: round trips, every tamper case, wrong key, key rotation."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from airlock.deploy.errors import (
    SealAuthenticationError,
    SealError,
    SealFormatError,
    SealTrailingDataError,
    SealTruncatedError,
    WrongKeyError,
)
from airlock.deploy.sealed import Kek, rewrap, seal, unseal
from airlock.deploy.sealed._format import TAG_BYTES, read_header

CHUNK = 64 * 1024


def _sealed(tmp_path: Path, kek: Kek, data: bytes, chunk: int = CHUNK) -> Path:
    src = tmp_path / "model.gguf"
    src.write_bytes(data)
    dst = tmp_path / "model.gguf.sealed"
    seal(src, dst, kek, chunk_size=chunk)
    return dst


def _body_offset(path: Path) -> int:
    with path.open("rb") as fh:
        return read_header(fh).body_offset


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _assert_unseal_fails(sealed: Path, kek: Kek, error: type[SealError]) -> SealError:
    out = sealed.parent / "out.bin"
    with pytest.raises(error) as exc_info:
        unseal(sealed, out, kek)
    assert not out.exists()
    assert _leftovers(sealed.parent) == []
    return exc_info.value


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK])
def test_round_trip_sizes(tmp_path: Path, kek: Kek, size: int) -> None:
    data = os.urandom(size)
    sealed = _sealed(tmp_path, kek, data)
    n_chunks = max(1, -(-size // CHUNK))
    assert sealed.stat().st_size == _body_offset(sealed) + size + n_chunks * TAG_BYTES
    unseal(sealed, tmp_path / "out", kek)
    assert (tmp_path / "out").read_bytes() == data


def test_round_trip_50mb_default_chunks(tmp_path: Path, kek: Kek) -> None:
    data = os.urandom(50 * 1024 * 1024)
    src = tmp_path / "w.safetensors"
    src.write_bytes(data)
    seal(src, tmp_path / "w.sealed", kek)
    assert data[:4096] not in (tmp_path / "w.sealed").read_bytes()
    unseal(tmp_path / "w.sealed", tmp_path / "w.out", kek)
    assert (
        hashlib.sha256((tmp_path / "w.out").read_bytes()).digest() == hashlib.sha256(data).digest()
    )


@pytest.mark.slow
def test_round_trip_sparse_multi_gigabyte_file(tmp_path: Path, kek: Kek) -> None:
    src = tmp_path / "big.bin"
    size = 3 * 1024**3 + 12345
    marks = {0: os.urandom(4096), 1024**3 + 7: os.urandom(4096), size - 4096: os.urandom(4096)}
    with src.open("wb") as fh:
        fh.truncate(size)  # sparse: holes read as zeros
        for offset, blob in marks.items():
            fh.seek(offset)
            fh.write(blob)
    seal(src, tmp_path / "big.sealed", kek)
    unseal(tmp_path / "big.sealed", tmp_path / "big.out", kek)

    def digest(path: Path) -> bytes:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(16 * 1024 * 1024):
                h.update(block)
        return h.digest()

    assert (tmp_path / "big.out").stat().st_size == size
    assert digest(tmp_path / "big.out") == digest(src)


def test_flipped_bit_in_a_chunk(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(4 * CHUNK))
    raw = bytearray(sealed.read_bytes())
    raw[_body_offset(sealed) + 2 * (CHUNK + TAG_BYTES) + 100] ^= 0x01  # inside chunk 2
    sealed.write_bytes(raw)
    err = _assert_unseal_fails(sealed, kek, SealAuthenticationError)
    assert isinstance(err, SealAuthenticationError)
    assert err.chunk_index == 2
    assert "chunk 2 of 4" in err.message


def test_flipped_bit_in_a_tag(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(2 * CHUNK))
    raw = bytearray(sealed.read_bytes())
    raw[-1] ^= 0x80
    sealed.write_bytes(raw)
    _assert_unseal_fails(sealed, kek, SealAuthenticationError)


def test_reordered_chunks(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(4 * CHUNK))
    raw = sealed.read_bytes()
    off, rec = _body_offset(sealed), CHUNK + TAG_BYTES
    c1, c2 = raw[off + rec : off + 2 * rec], raw[off + 2 * rec : off + 3 * rec]
    sealed.write_bytes(raw[: off + rec] + c2 + c1 + raw[off + 3 * rec :])
    err = _assert_unseal_fails(sealed, kek, SealAuthenticationError)
    assert isinstance(err, SealAuthenticationError)
    assert err.chunk_index == 1


def test_dropped_chunk(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(4 * CHUNK))
    raw = sealed.read_bytes()
    off, rec = _body_offset(sealed), CHUNK + TAG_BYTES
    sealed.write_bytes(raw[: off + rec] + raw[off + 2 * rec :])
    err = _assert_unseal_fails(sealed, kek, SealTruncatedError)
    assert "chunks dropped" in err.message


def test_truncated_mid_chunk_and_at_a_chunk_boundary(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(3 * CHUNK + 10))
    raw = sealed.read_bytes()
    sealed.write_bytes(raw[:-100])
    _assert_unseal_fails(sealed, kek, SealTruncatedError)
    sealed.write_bytes(raw[: -(10 + TAG_BYTES)])  # the final (short) chunk removed
    _assert_unseal_fails(sealed, kek, SealTruncatedError)
    sealed.write_bytes(raw[: _body_offset(sealed)])  # header only
    _assert_unseal_fails(sealed, kek, SealTruncatedError)


def test_appended_chunk(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(2 * CHUNK))
    raw = sealed.read_bytes()
    off, rec = _body_offset(sealed), CHUNK + TAG_BYTES
    sealed.write_bytes(raw + raw[off : off + rec])  # replay the first chunk at the end
    err = _assert_unseal_fails(sealed, kek, SealTrailingDataError)
    assert "appended" in err.message


def test_wrong_key(tmp_path: Path, kek: Kek, other_kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(CHUNK))
    err = _assert_unseal_fails(sealed, other_kek, WrongKeyError)
    assert kek.key_id in err.message
    assert other_kek.key_id in err.message
    assert kek.key.hex() not in err.message


def test_tampered_header_fields(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, os.urandom(2 * CHUNK))
    raw = sealed.read_bytes()
    # Change the recorded plaintext size to another number of the same width: the JSON
    # still parses, but the header no longer authenticates (the key wrap covers it).
    size_text = str(2 * CHUNK).encode()
    forged = str(2 * CHUNK - 1).encode().rjust(len(size_text), b"1")
    assert raw.count(b'"size":' + size_text) == 1
    sealed.write_bytes(raw.replace(b'"size":' + size_text, b'"size":' + forged))
    _assert_unseal_fails(sealed, kek, SealAuthenticationError)
    # A flipped bit in the wrapped data key.
    marker = b'"wrapped_key":"'
    i = raw.index(marker) + len(marker) + 3
    flipped = bytearray(raw)
    flipped[i] = ord("A") if raw[i] != ord("A") else ord("B")
    sealed.write_bytes(bytes(flipped))
    _assert_unseal_fails(sealed, kek, SealAuthenticationError)


def test_not_a_sealed_file(tmp_path: Path, kek: Kek) -> None:
    plain = tmp_path / "plain.gguf"
    plain.write_bytes(b"GGUF" + os.urandom(1000))
    _assert_unseal_fails(plain, kek, SealFormatError)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    _assert_unseal_fails(empty, kek, SealFormatError)
    sealed = _sealed(tmp_path, kek, b"x")
    raw = bytearray(sealed.read_bytes())
    struct.pack_into(">H", raw, 8, 2)  # version 2
    sealed.write_bytes(bytes(raw))
    err = _assert_unseal_fails(sealed, kek, SealFormatError)
    assert "version 2" in err.message


def test_outputs_are_not_overwritten_unless_asked(tmp_path: Path, kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, b"weights")
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    with pytest.raises(SealError, match="already exists"):
        unseal(sealed, out, kek)
    assert out.read_bytes() == b"keep me"
    unseal(sealed, out, kek, overwrite=True)
    assert out.read_bytes() == b"weights"


def test_failed_unseal_keeps_an_existing_output(tmp_path: Path, kek: Kek, other_kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, b"weights")
    out = tmp_path / "out"
    out.write_bytes(b"previous")
    with pytest.raises(WrongKeyError):
        unseal(sealed, out, other_kek, overwrite=True)
    assert out.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_bad_chunk_size_and_inputs(tmp_path: Path, kek: Kek) -> None:
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(SealError, match="chunk size"):
        seal(tmp_path / "a", tmp_path / "b", kek, chunk_size=100)
    with pytest.raises(SealError, match="cannot open"):
        seal(tmp_path / "missing", tmp_path / "b", kek)
    assert not (tmp_path / "b").exists()
    assert _leftovers(tmp_path) == []


def test_rotation_rewraps_without_reencrypting(tmp_path: Path, kek: Kek, other_kek: Kek) -> None:
    data = os.urandom(3 * CHUNK)
    sealed = _sealed(tmp_path, kek, data)
    before = sealed.read_bytes()
    rotated = tmp_path / "rotated"
    assert rewrap(sealed, rotated, kek, other_kek) == 1
    after = rotated.read_bytes()
    # Body bytes identical: only the key block changed.
    assert after[_body_offset(rotated) :] == before[_body_offset(sealed) :]
    with pytest.raises(WrongKeyError):
        unseal(rotated, tmp_path / "x", kek)
    unseal(rotated, tmp_path / "y", other_kek)
    assert (tmp_path / "y").read_bytes() == data
    # In place, and idempotent once done.
    assert rewrap(sealed, None, kek, other_kek) == 1
    assert rewrap(sealed, None, kek, other_kek) == 0
    unseal(sealed, tmp_path / "z", other_kek)
    assert (tmp_path / "z").read_bytes() == data


def test_rotation_needs_the_old_key(tmp_path: Path, kek: Kek, other_kek: Kek) -> None:
    sealed = _sealed(tmp_path, kek, b"w")
    before = sealed.read_bytes()
    with pytest.raises(WrongKeyError):
        rewrap(sealed, None, other_kek, other_kek)
    assert sealed.read_bytes() == before
    assert _leftovers(tmp_path) == []
