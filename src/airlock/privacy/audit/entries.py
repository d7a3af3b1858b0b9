"""The signed artefacts of the chain: records, checkpoints and the head.

A record's ``hash`` is HMAC-SHA256(key, canonical JSON of its body), and the body
holds ``index`` and ``prev_hash``, so changing, removing, inserting or reordering a
record breaks the link to its neighbours. Each artefact type carries a distinct
``type`` field so a MAC of one kind can never be replayed as another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from airlock.ledger.record import RequestRecord
from airlock.privacy.audit._canonical import canonical_json, mac_hex

__all__ = [
    "BODY_VERSION",
    "ChainEntry",
    "CheckpointEntry",
    "EventKind",
    "HeadState",
    "PurgeEvent",
    "build_entry",
    "checkpoint_mac",
    "head_mac",
]

BODY_VERSION = 1
EventKind = Literal["request", "purge"]


@dataclass(frozen=True, slots=True)
class PurgeEvent:
    """Metadata of a retention purge; itself a record in the chain."""

    before: datetime
    removed: int
    anchor_index: int
    anchor_prev_hash: str
    # Usage-ledger rows removed with the records, and their cut-off; None when kept.
    usage_before: datetime | None = None
    usage_removed: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.isoformat(),
            "removed": self.removed,
            "anchor_index": self.anchor_index,
            "anchor_prev_hash": self.anchor_prev_hash,
            "usage_before": None if self.usage_before is None else self.usage_before.isoformat(),
            "usage_removed": self.usage_removed,
        }


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One stored link: the exact ``body`` text that was MACed, and its ``hash``."""

    index: int
    ts: datetime
    appended_at: datetime
    event: EventKind
    request_id: str | None
    prev_hash: str
    hash: str
    body: str

    def jsonl_line(self) -> str:
        """The mirror's line: the body's fields plus ``hash``."""
        obj = json.loads(self.body)
        obj["hash"] = self.hash
        return canonical_json(obj)


@dataclass(frozen=True, slots=True)
class CheckpointEntry:
    index: int
    hash: str
    created_at: datetime
    mac: str

    def jsonl_line(self) -> str:
        return canonical_json(
            {
                "type": "checkpoint",
                "index": self.index,
                "hash": self.hash,
                "time": self.created_at.isoformat(),
                "mac": self.mac,
            }
        )


@dataclass(frozen=True, slots=True)
class HeadState:
    """The chain's last record and its first (the anchor, moved forward by purges)."""

    last_index: int
    last_hash: str
    anchor_index: int
    anchor_prev_hash: str

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "type": "head",
            "last_index": self.last_index,
            "last_hash": self.last_hash,
            "anchor_index": self.anchor_index,
            "anchor_prev_hash": self.anchor_prev_hash,
        }


def head_mac(key: bytes, head: HeadState) -> str:
    return mac_hex(key, canonical_json(head.to_json_dict()))


def checkpoint_mac(key: bytes, index: int, hash_: str, created_at: datetime) -> str:
    return mac_hex(
        key,
        canonical_json(
            {"type": "checkpoint", "index": index, "hash": hash_, "time": created_at.isoformat()}
        ),
    )


def build_entry(
    key: bytes,
    index: int,
    prev_hash: str,
    appended_at: datetime,
    event: RequestRecord | PurgeEvent,
) -> ChainEntry:
    kind: EventKind = "request" if isinstance(event, RequestRecord) else "purge"
    body = canonical_json(
        {
            "type": "record",
            "v": BODY_VERSION,
            "index": index,
            "prev_hash": prev_hash,
            "appended_at": appended_at.isoformat(),
            "event": kind,
            "data": event.to_json_dict(),
        }
    )
    if isinstance(event, RequestRecord):
        ts, request_id = event.timestamp, event.request_id
    else:
        ts, request_id = appended_at, None
    return ChainEntry(
        index=index,
        ts=ts,
        appended_at=appended_at,
        event=kind,
        request_id=request_id,
        prev_hash=prev_hash,
        hash=mac_hex(key, body),
        body=body,
    )
