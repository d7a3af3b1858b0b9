"""The audit chain's secret.

By default ``$AIRLOCK_HOME/audit.key``, created 0600 on first use. Replicas sharing a
database must share it, so an operator may name one file for all of them instead
(``AIRLOCK_AUDIT_KEY_FILE``, e.g. a Kubernetes secret): that file is never created,
and symlinks to it are followed. :func:`load_audit_key` is the one place that decides.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from airlock.privacy.audit.errors import AuditKeyError

__all__ = [
    "KEY_BYTES",
    "KEY_FILENAME",
    "KEY_FILE_ENV",
    "load_audit_key",
    "load_configured_key",
    "load_key",
    "load_or_create_key",
]

KEY_FILENAME = "audit.key"
KEY_FILE_ENV = "AIRLOCK_AUDIT_KEY_FILE"
KEY_BYTES = 32
_CREATE_RACE_RETRIES = 20


def _own_group(gid: int) -> bool:
    return gid == os.getegid() or gid in os.getgroups()


def _read_key(
    path: Path, name: str, fix: str = "chmod 600 it", *, group_read_ok: bool = False
) -> bytes:
    """The key in the file at ``path`` (not followed if a symlink); ``name`` says in
    error messages which file it is. Messages never hold the file's content.

    ``group_read_ok``: also accept group read when the group is one of this process's
    own (Kubernetes turns a secret's 0400 into 0440 for the pod's ``fsGroup``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise AuditKeyError(f"{name} does not exist") from None
    except OSError as exc:
        raise AuditKeyError(f"cannot open {name}: {exc.strerror}") from None
    try:
        # Checked on the open descriptor: the file read is the file whose mode was seen.
        info = os.fstat(fd)
        mode = info.st_mode
        if not stat.S_ISREG(mode):
            raise AuditKeyError(f"{name} is not a regular file")
        exposed = stat.S_IRWXG | stat.S_IRWXO
        if group_read_ok and _own_group(info.st_gid):
            exposed &= ~stat.S_IRGRP
        if mode & exposed:
            raise AuditKeyError(f"{name} is accessible by group or others; {fix}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read()
    except OSError as exc:
        raise AuditKeyError(f"cannot read {name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise AuditKeyError(f"{name} is not hex-encoded") from None
    if len(key) < KEY_BYTES:
        raise AuditKeyError(f"{name} holds fewer than {KEY_BYTES} bytes")
    return key


def load_key(path: Path) -> bytes:
    """Read an existing key; refuse a symlink and a file group or others can read."""
    return _read_key(path, f"audit key file {path}")


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``, creating it (mode 0600, exclusive create) if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may be writing it this instant: give it a moment.
        for _ in range(_CREATE_RACE_RETRIES):
            try:
                return load_key(path)
            except AuditKeyError:
                time.sleep(0.05)
        return load_key(path)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return load_key(path)


def load_configured_key(path: Path) -> bytes:
    """The key in an operator-provided file, which must already exist.

    Symlinks are followed first (Kubernetes mounts a secret as ``audit.key ->
    ..data/audit.key``, ``..data -> ..<timestamp>``); the final file is then opened
    without following, so it is that file whose mode is checked. Group read is
    accepted when the group is this process's own: that is how the kubelet applies a
    pod's ``fsGroup`` to a secret (0400 becomes 0440), and only the pod holds it.
    """
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        raise AuditKeyError(
            f"{KEY_FILE_ENV} names {path}, which does not exist; a configured audit key "
            "is never created: provide the file (the same key for every replica)"
        ) from None
    except (OSError, RuntimeError) as exc:
        # RuntimeError: a symlink loop on Python < 3.13.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "symlink loop"
        raise AuditKeyError(
            f"{KEY_FILE_ENV} names {path}, which cannot be resolved: {reason}"
        ) from None
    shown = str(path) if target == path.absolute() else f"{path} (-> {target})"
    return _read_key(
        target,
        f"audit key file {shown} from {KEY_FILE_ENV}",
        "chmod 400 or 600 it (Kubernetes: secret volume defaultMode: 0400)",
        group_read_ok=True,
    )


def load_audit_key(home: Path, key_file: Path | None = None, *, create: bool = True) -> bytes:
    """The audit key: ``key_file`` when configured, else ``home/audit.key``.

    Only the default file is created on first use (when ``create``); a configured one
    must exist, since a replica that made its own key could not extend the shared chain.
    """
    if key_file is not None:
        return load_configured_key(key_file)
    path = home / KEY_FILENAME
    return load_or_create_key(path) if create else load_key(path)
