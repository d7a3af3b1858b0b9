"""Canonical JSON and the keyed hash every audit artefact is signed with."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["GENESIS_HASH", "canonical_json", "mac_hex", "macs_equal"]

#: ``prev_hash`` of the first record of a chain that was never purged.
GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, ASCII only: the same object always gives the same text."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def mac_hex(key: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text`` under ``key``; without the key nobody can recompute it."""
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def macs_equal(a: str | None, b: str) -> bool:
    return isinstance(a, str) and hmac.compare_digest(
        a.encode("ascii", "replace"), b.encode("ascii")
    )
