"""Sealed (encrypted-at-rest) model weights: streaming AES-256-GCM with envelope keys.

``seal``/``unseal`` handle single files and whole directories; ``rewrap`` rotates the
key-encryption key without re-encrypting; ``open_sealed_to_memfd`` decrypts into memory
only. Format and guarantees: see ``_format`` and docs/planner.md.
"""

from __future__ import annotations

from pathlib import Path

from airlock.deploy.errors import SealError
from airlock.deploy.sealed._dirs import (
    MANIFEST_NAME,
    is_sealed_dir,
    rewrap_dir,
    seal_dir,
    unseal_dir,
)
from airlock.deploy.sealed._kek import KEK_BYTES, Kek, KekSource, generate_kek_file, load_kek
from airlock.deploy.sealed._memfd import open_sealed_to_memfd, sealed_memfd_path
from airlock.deploy.sealed._stream import DEFAULT_CHUNK_SIZE, rewrap_file, seal_file, unseal_file

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "KEK_BYTES",
    "MANIFEST_NAME",
    "Kek",
    "KekSource",
    "generate_kek_file",
    "is_sealed_dir",
    "load_kek",
    "open_sealed_to_memfd",
    "rewrap",
    "seal",
    "sealed_memfd_path",
    "unseal",
]


def seal(
    src: Path, dst: Path, kek: Kek, *, chunk_size: int = DEFAULT_CHUNK_SIZE, overwrite: bool = False
) -> int:
    """Seal a file (to file ``dst``) or a directory (to new directory ``dst``); returns the
    number of files sealed."""
    if src.is_dir():
        return seal_dir(src, dst, kek, chunk_size=chunk_size)
    seal_file(src, dst, kek, chunk_size=chunk_size, overwrite=overwrite)
    return 1


def unseal(src: Path, dst: Path, kek: Kek, *, overwrite: bool = False) -> int:
    """Decrypt a sealed file or directory; nothing is written unless everything
    authenticates. Returns the number of files written."""
    if src.is_dir():
        return unseal_dir(src, dst, kek)
    unseal_file(src, dst, kek, overwrite=overwrite)
    return 1


def rewrap(src: Path, dst: Path | None, old: Kek, new: Kek) -> int:
    """Re-wrap data keys under ``new``: a file to ``dst`` (or in place when None), a sealed
    directory in place (``dst`` must be None). Returns the number of files rewritten."""
    if src.is_dir():
        if dst is not None:
            raise SealError("a sealed directory is re-wrapped in place; give no output path")
        return rewrap_dir(src, old, new)
    return int(rewrap_file(src, dst, old, new))
