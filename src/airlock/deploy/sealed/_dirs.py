"""Sealed directories (Hugging Face model directories and the like).

Layout of a sealed directory::

    OUT/MANIFEST.seal        sealed JSON: format, version, dir_id, files[{path, blob, size}]
    OUT/blobs/000000.seal    one sealed file per regular input file, own data key each

File names and sizes live only inside the sealed manifest. Each blob's authenticated
header carries the context ``"<dir_id>:<index>"``, so blobs cannot be swapped, moved or
replayed from another sealed directory. Unsealing checks that exactly the manifest's blobs
are present, writes into a temporary directory beside the target and renames it into place
only when every file authenticated.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from airlock.deploy.errors import (
    SealAuthenticationError,
    SealError,
    SealFormatError,
    SealTrailingDataError,
    SealTruncatedError,
)
from airlock.deploy.sealed._kek import Kek
from airlock.deploy.sealed._stream import (
    DEFAULT_CHUNK_SIZE,
    BufferSink,
    atomic_output,
    decrypt_body,
    open_checked,
    rewrap_file,
    seal_file,
    seal_stream,
    unseal_file,
)

__all__ = ["MANIFEST_NAME", "is_sealed_dir", "rewrap_dir", "seal_dir", "unseal_dir"]

MANIFEST_NAME = "MANIFEST.seal"
_BLOBS = "blobs"
_FORMAT = "airlock-sealed-dir"
_MANIFEST_CONTEXT = "manifest"
_MAX_MANIFEST = 64 * 1024 * 1024


def is_sealed_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_NAME).is_file()


def _input_files(src: Path) -> Iterator[tuple[str, Path]]:
    """Regular files under ``src`` (symlinks to files followed, as in HF cache snapshots),
    sorted by relative POSIX path."""
    found = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                raise SealError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
            if not stat.S_ISREG(mode):
                raise SealError(f"{str(path)!r} is not a regular file; cannot seal it")
            found.append((path.relative_to(src).as_posix(), path))
    yield from sorted(found)


def seal_dir(src: Path, dst: Path, kek: Kek, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Seal every file under ``src`` into the new directory ``dst``; returns the file count."""
    if dst.exists():
        raise SealError(f"output {str(dst)!r} already exists")
    dir_id = secrets.token_hex(16)
    staging = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))
    try:
        (staging / _BLOBS).mkdir()
        entries = []
        for index, (rel, path) in enumerate(_input_files(src)):
            blob = f"{_BLOBS}/{index:06d}.seal"
            seal_file(path, staging / blob, kek, chunk_size=chunk_size, context=f"{dir_id}:{index}")
            entries.append({"path": rel, "blob": blob, "size": path.stat().st_size})
        manifest = json.dumps(
            {"format": _FORMAT, "version": 1, "dir_id": dir_id, "files": entries},
            sort_keys=True,
        ).encode("utf-8")
        with atomic_output(staging / MANIFEST_NAME, overwrite=False) as out:
            seal_stream(
                io.BytesIO(manifest), len(manifest), out, kek, chunk_size, _MANIFEST_CONTEXT
            )
        os.rename(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(entries)


def _read_manifest(src: Path, kek: Kek) -> tuple[str, list[tuple[str, str, int]]]:
    with open(src / MANIFEST_NAME, "rb", buffering=0) as fh:
        header, keys = open_checked(fh, kek, _MANIFEST_CONTEXT)
        if header.fixed.size > _MAX_MANIFEST:
            raise SealFormatError("sealed manifest is implausibly large")
        buf = bytearray(header.fixed.size)
        decrypt_body(fh, header, keys, BufferSink(memoryview(buf)))
    try:
        obj = json.loads(buf)
        if obj["format"] != _FORMAT or obj["version"] != 1:
            raise SealFormatError("unsupported sealed-directory manifest")
        dir_id = str(obj["dir_id"])
        files = [(str(f["path"]), str(f["blob"]), int(f["size"])) for f in obj["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SealFormatError("sealed manifest is malformed") from exc
    return dir_id, files


def _safe_relative(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise SealFormatError("sealed manifest names a path outside the directory")
    return path


def _check_blob_set(src: Path, files: list[tuple[str, str, int]]) -> None:
    expected = {blob for _, blob, _ in files}
    present = (
        {p.relative_to(src).as_posix() for p in (src / _BLOBS).glob("*")}
        if (src / _BLOBS).is_dir()
        else set()
    )
    missing = sorted(expected - present)
    if missing:
        raise SealTruncatedError(
            f"sealed directory is missing {len(missing)} blob(s), e.g. {missing[0]}"
        )
    extra = sorted(present - expected)
    if extra:
        raise SealTrailingDataError(
            f"sealed directory holds {len(extra)} blob(s) its manifest does not list, "
            f"e.g. {extra[0]}"
        )


def unseal_dir(src: Path, dst: Path, kek: Kek) -> int:
    """Decrypt the sealed directory ``src`` into the new directory ``dst``."""
    if dst.exists():
        raise SealError(f"output {str(dst)!r} already exists")
    dir_id, files = _read_manifest(src, kek)
    _check_blob_set(src, files)
    staging = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))
    try:
        for index, (rel, blob, size) in enumerate(files):
            if blob != f"{_BLOBS}/{index:06d}.seal":
                raise SealAuthenticationError("sealed manifest lists blobs out of order")
            target = staging.joinpath(*_safe_relative(rel).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            unseal_file(
                src / blob, target, kek, expected_context=f"{dir_id}:{index}", expected_size=size
            )
        os.rename(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(files)


def rewrap_dir(src: Path, old: Kek, new: Kek) -> int:
    """Re-wrap every blob and the manifest of ``src`` in place; returns how many files were
    rewritten (already-rotated files are skipped, so a rerun resumes)."""
    if not is_sealed_dir(src):
        raise SealFormatError(f"{str(src)!r} is not a sealed directory")
    changed = 0
    for blob in sorted((src / _BLOBS).glob("*.seal")):
        changed += rewrap_file(blob, None, old, new)
    changed += rewrap_file(src / MANIFEST_NAME, None, old, new)
    return changed
