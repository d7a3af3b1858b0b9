"""The audit chain's secret: ``$AIRLOCK_HOME/audit.key``, created 0600 on first use."""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from airlock.privacy.audit.errors import AuditKeyError

__all__ = ["KEY_BYTES", "KEY_FILENAME", "load_key", "load_or_create_key"]

KEY_FILENAME = "audit.key"
KEY_BYTES = 32
_CREATE_RACE_RETRIES = 20


def load_key(path: Path) -> bytes:
    """Read an existing key; refuse one that group or others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise AuditKeyError(f"audit key file {path} does not exist") from None
    except OSError as exc:
        raise AuditKeyError(f"cannot open audit key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuditKeyError(
                f"audit key file {path} is accessible by group or others; chmod 600 it"
            )
        raw = fh.read()
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise AuditKeyError(f"audit key file {path} is not hex-encoded") from None
    if len(key) < KEY_BYTES:
        raise AuditKeyError(f"audit key file {path} holds fewer than {KEY_BYTES} bytes")
    return key


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
