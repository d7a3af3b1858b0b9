"""Streaming seal/unseal/rewrap of one file (format in ``_format``).

Large chunks, preallocated buffers and ``encrypt_into``/``decrypt_into`` keep the data path
to one read, one AEAD pass and one write per chunk. Outputs are written to a temporary file
in the target directory and renamed into place only after the last chunk authenticated;
on any failure the temporary file is removed, so a failed unseal leaves no output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from cryptography.exceptions import InvalidTag

from airlock.deploy.errors import (
    SealAuthenticationError,
    SealError,
    SealTrailingDataError,
    SealTruncatedError,
)
from airlock.deploy.sealed._format import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    TAG_BYTES,
    BodyKeys,
    FixedHeader,
    SealedHeader,
    chunk_count,
    chunk_nonce,
    derive_body_keys,
    encode_header,
    make_key_block,
    read_header,
    unwrap_data_key,
)
from airlock.deploy.sealed._kek import Kek

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BufferSink",
    "FileSink",
    "Sink",
    "atomic_output",
    "decrypt_body",
    "open_checked",
    "rewrap_file",
    "seal_file",
    "seal_stream",
    "unseal_file",
]

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024


class Sink(Protocol):
    """Where decrypted chunks go: ``region`` returns the buffer to decrypt into, ``commit``
    is called once it holds authenticated plaintext."""

    def region(self, offset: int, length: int) -> memoryview: ...

    def commit(self, view: memoryview) -> None: ...


class FileSink:
    def __init__(self, out: IO[bytes], chunk_size: int) -> None:
        self._out = out
        self._buf = memoryview(bytearray(chunk_size))

    def region(self, offset: int, length: int) -> memoryview:
        return self._buf[:length]

    def commit(self, view: memoryview) -> None:
        _write_all(self._out, view)


class BufferSink:
    """Decrypts straight into a caller's buffer (an mmap of a memfd, a bytearray)."""

    def __init__(self, target: memoryview) -> None:
        self._target = target

    def region(self, offset: int, length: int) -> memoryview:
        return self._target[offset : offset + length]

    def commit(self, view: memoryview) -> None:
        return None


def _read_into(fh: IO[bytes], view: memoryview) -> int:
    """Fill ``view`` unless EOF comes first; returns the bytes read."""
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _write_all(out: IO[bytes], view: memoryview) -> None:
    done = 0
    while done < len(view):
        n = out.write(view[done:])
        if n is None or n <= 0:
            raise SealError("could not write the output (device full or closed)")
        done += n


def _body_length(fixed: FixedHeader) -> int:
    return fixed.size + chunk_count(fixed.size, fixed.chunk_size) * TAG_BYTES


@contextlib.contextmanager
def atomic_output(dst: Path, *, overwrite: bool) -> Iterator[IO[bytes]]:
    """A temporary file beside ``dst`` that becomes ``dst`` only if the block succeeds."""
    if not overwrite and (dst.exists() or dst.is_symlink()):
        raise SealError(f"output {str(dst)!r} already exists (use --force to replace it)")
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{dst.name}.", suffix=".tmp")
    except OSError as exc:
        raise SealError(
            f"cannot create a file in {str(parent)!r}: {exc.strerror or type(exc).__name__}"
        ) from exc
    tmp = Path(tmp_name)
    try:
        with open(fd, "wb", buffering=0) as out:
            yield out
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_layout(fh: IO[bytes], header: SealedHeader) -> None:
    """For regular files, compare the length with what the authenticated header implies."""
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        return
    expected = header.body_offset + _body_length(header.fixed)
    if st.st_size < expected:
        raise SealTruncatedError(
            f"sealed file is {expected - st.st_size} bytes shorter than its authenticated "
            "header says: truncated or chunks dropped"
        )
    if st.st_size > expected:
        raise SealTrailingDataError(
            f"{st.st_size - expected} bytes follow the final chunk: data was appended"
        )


def open_checked(
    fh: IO[bytes], kek: Kek, expected_context: str | None = None
) -> tuple[SealedHeader, BodyKeys]:
    """Read and authenticate the header, leaving ``fh`` at the body; check the layout
    against the file's length and (for directory blobs) the expected context."""
    header = read_header(fh)
    data_key = unwrap_data_key(header, kek)
    if expected_context is not None and header.fixed.context != expected_context:
        raise SealAuthenticationError(
            "sealed blob is not the one its directory manifest expects (swapped or moved)"
        )
    _check_layout(fh, header)
    return header, derive_body_keys(data_key, header.fixed.salt)


def decrypt_body(fh: IO[bytes], header: SealedHeader, keys: BodyKeys, sink: Sink) -> None:
    """Decrypt every chunk (positioned at the body) into ``sink``; typed errors on failure."""
    fixed = header.fixed
    n = chunk_count(fixed.size, fixed.chunk_size)
    record = memoryview(bytearray(min(fixed.size, fixed.chunk_size) + TAG_BYTES))
    for i in range(n):
        last = i == n - 1
        plain_len = fixed.size - fixed.chunk_size * (n - 1) if last else fixed.chunk_size
        ct = record[: plain_len + TAG_BYTES]
        if _read_into(fh, ct) < len(ct):
            raise SealTruncatedError(f"sealed data ends inside chunk {i} of {n}: truncated")
        # Released on exit, also on failure: a live slice of an mmap would keep it open.
        with sink.region(i * fixed.chunk_size, plain_len) as out:
            try:
                keys.aead.decrypt_into(
                    chunk_nonce(keys.nonce_prefix, i, last), ct, header.header_aad, out
                )
            except InvalidTag:
                raise SealAuthenticationError(
                    f"chunk {i} of {n} failed authentication: modified, reordered or corrupted",
                    chunk_index=i,
                ) from None
            sink.commit(out)
    if fh.read(1):
        raise SealTrailingDataError(f"data follows the final chunk ({n - 1}): data was appended")


def seal_stream(
    fin: IO[bytes], size: int, fout: IO[bytes], kek: Kek, chunk_size: int, context: str = ""
) -> None:
    """Seal exactly ``size`` bytes from ``fin`` into ``fout``."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise SealError(f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes")
    data_key = secrets.token_bytes(32)
    fixed = FixedHeader(chunk_size, secrets.token_bytes(32), size, context)
    aad, _ = encode_header(fixed, None)
    block = make_key_block(aad, data_key, kek, secrets.token_bytes(12))
    _, header = encode_header(fixed, block)
    keys = derive_body_keys(data_key, fixed.salt)
    _write_all(fout, memoryview(header))
    n = chunk_count(size, chunk_size)
    inbuf = memoryview(bytearray(min(size, chunk_size)))
    outbuf = memoryview(bytearray(min(size, chunk_size) + TAG_BYTES))
    for i in range(n):
        last = i == n - 1
        plain_len = size - chunk_size * (n - 1) if last else chunk_size
        plain = inbuf[:plain_len]
        if _read_into(fin, plain) < plain_len:
            raise SealError("the input shrank while it was being sealed")
        ct = outbuf[: plain_len + TAG_BYTES]
        keys.aead.encrypt_into(chunk_nonce(keys.nonce_prefix, i, last), plain, aad, ct)
        _write_all(fout, ct)
    if fin.read(1):
        raise SealError("the input grew while it was being sealed")


def _open_regular(src: Path) -> IO[bytes]:
    try:
        fh = open(src, "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise SealError(f"cannot open {str(src)!r}: {exc.strerror or type(exc).__name__}") from exc
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        fh.close()
        raise SealError(f"{str(src)!r} is not a regular file")
    return fh


def seal_file(
    src: Path,
    dst: Path,
    kek: Kek,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    context: str = "",
    overwrite: bool = False,
) -> None:
    with _open_regular(src) as fin:
        size = os.fstat(fin.fileno()).st_size
        with atomic_output(dst, overwrite=overwrite) as fout:
            seal_stream(fin, size, fout, kek, chunk_size, context)


def unseal_file(
    src: Path,
    dst: Path,
    kek: Kek,
    *,
    expected_context: str | None = None,
    expected_size: int | None = None,
    overwrite: bool = False,
) -> None:
    """Decrypt ``src`` to ``dst``; on any failure ``dst`` is not created (or not replaced)."""
    with _open_regular(src) as fin:
        header, keys = open_checked(fin, kek, expected_context)
        if expected_size is not None and header.fixed.size != expected_size:
            raise SealAuthenticationError("sealed blob size differs from its manifest entry")
        with atomic_output(dst, overwrite=overwrite) as fout:
            decrypt_body(fin, header, keys, FileSink(fout, header.fixed.chunk_size))


def _copy_rest(fin: IO[bytes], fout: IO[bytes]) -> None:
    # In-kernel copy where the filesystem allows it; plain copy across devices.
    try:
        while os.copy_file_range(fin.fileno(), fout.fileno(), 1 << 30):
            pass
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        shutil.copyfileobj(fin, fout, 8 * 1024 * 1024)


def rewrap_file(src: Path, dst: Path | None, old: Kek, new: Kek) -> bool:
    """Re-wrap the data key of ``src`` under ``new`` without touching the encrypted body.
    Writes ``dst`` (or replaces ``src`` when ``dst`` is None). Returns False when ``src`` is
    already wrapped under ``new`` and is rewritten in place (nothing to do), so an
    interrupted rotation of a directory can simply be run again."""
    with _open_regular(src) as fin:
        header = read_header(fin)
        block = header.key_block
        if dst is None and block.kek_id == new.key_id and block.source == new.source:
            unwrap_data_key(header, new)  # proves it authentic under the new KEK
            return False
        data_key = unwrap_data_key(header, old)
        _check_layout(fin, header)
        new_block = make_key_block(header.header_aad, data_key, new, secrets.token_bytes(12))
        _, new_header = encode_header(header.fixed, new_block)
        fin.seek(header.body_offset)
        with atomic_output(dst or src, overwrite=dst is None) as fout:
            _write_all(fout, memoryview(new_header))
            _copy_rest(fin, fout)
    return True
