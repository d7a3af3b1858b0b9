"""The admin (master) key: from ``AIRLOCK_MASTER_KEY`` or created once on first start."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MasterKey", "ensure_master_key", "hash_key"]

_HASH_FILE = "master_key.sha256"
_PREFIX = "alk_master_"


def hash_key(key: str) -> str:
    # Keys carry >= 128 bits of randomness, so a fast hash is enough: there is nothing
    # to brute-force that a slow KDF would protect.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MasterKey:
    digest: str
    # Set only when this start created the key: it is shown once, then forgotten.
    created: str | None = None


def ensure_master_key(home: Path, from_env: str | None) -> MasterKey:
    """Return the master key's hash; create and store a new key when there is none."""
    if from_env:
        return MasterKey(digest=hash_key(from_env))
    path = home / _HASH_FILE
    if path.exists():
        return MasterKey(digest=path.read_text(encoding="ascii").strip())
    home.mkdir(parents=True, exist_ok=True)
    key = _PREFIX + secrets.token_urlsafe(32)
    digest = hash_key(key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(digest + "\n")
    return MasterKey(digest=digest, created=key)
