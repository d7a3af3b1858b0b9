"""Decrypt a sealed file into anonymous memory (``memfd_create``), never onto disk.

The embedded engine opens ``/proc/self/fd/N`` like any file path (llama.cpp reads or mmaps
it). The memfd is sealed read-only once filled (``F_SEAL_WRITE | F_SEAL_SHRINK |
F_SEAL_GROW | F_SEAL_SEAL``). Caveat: memfd pages are ordinary anonymous memory and can be
swapped out; on hosts with swap, plaintext weights may reach the swap device unless swap is
encrypted or disabled (see docs/planner.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from airlock.deploy.errors import SealError
from airlock.deploy.sealed._kek import Kek
from airlock.deploy.sealed._stream import FileSink, decrypt_body, open_checked

__all__ = ["open_sealed_to_memfd", "sealed_memfd_path"]

_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def open_sealed_to_memfd(path: Path | str, kek: Kek, *, name: str = "airlock-sealed") -> int:
    """Decrypt ``path`` into a new memfd and return its descriptor (positioned at 0,
    close-on-exec; the caller closes it, or passes it to a child with ``pass_fds``)."""
    try:
        fin = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise SealError(f"cannot open {str(path)!r}: {exc.strerror or type(exc).__name__}") from exc
    with fin:
        header, keys = open_checked(fin, kek)
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            # write() into the memfd measured faster than decrypting into an mmap of it:
            # the kernel allocates shmem pages in bulk instead of one fault per 4 KiB page.
            with open(fd, "wb", buffering=0, closefd=False) as out:
                decrypt_body(fin, header, keys, FileSink(out, header.fixed.chunk_size))
            os.lseek(fd, 0, os.SEEK_SET)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        except BaseException:
            os.close(fd)
            raise
    return fd


@contextlib.contextmanager
def sealed_memfd_path(path: Path | str, kek: Kek) -> Iterator[str]:
    """``with sealed_memfd_path(p, kek) as plain:`` gives a ``/proc/self/fd/N`` path to the
    decrypted bytes, valid inside this process until the block ends."""
    fd = open_sealed_to_memfd(path, kek)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
