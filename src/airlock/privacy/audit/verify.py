"""Verify the chain in the database or in the JSONL mirror.

Walking from the anchor (the chain's start, moved forward by purges), each record
must carry the next index, the previous record's hash, and a hash equal to the HMAC
of its body. The walk must end exactly at the signed head; every signed checkpoint
must match the record at its index. The first index where any of this fails is
reported: an edited record fails its MAC, a deleted one leaves a gap, an inserted
or reordered one breaks the index/prev_hash sequence, and a cut tail ends before
the head (or before a checkpoint).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.db import as_utc
from airlock.ledger.models import AUDIT_RECORDS
from airlock.privacy.audit import store
from airlock.privacy.audit._canonical import GENESIS_HASH, canonical_json, mac_hex, macs_equal
from airlock.privacy.audit.entries import (
    BODY_VERSION,
    ChainEntry,
    CheckpointEntry,
    HeadState,
    checkpoint_mac,
    head_mac,
)
from airlock.privacy.audit.errors import AuditIntegrityError
from airlock.privacy.audit.mirror import JsonlMirror

__all__ = ["VerifyResult", "verify_both", "verify_db", "verify_jsonl"]

Source = Literal["db", "jsonl", "both"]
_CHUNK = 5000
_RECORDS = AUDIT_RECORDS


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    source: Source
    records: int
    anchor_index: int
    last_index: int
    first_bad_index: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            span = (
                "empty chain"
                if self.records == 0
                else f"records {self.anchor_index}..{self.last_index}"
            )
            return f"audit chain OK ({self.source}): {self.records} records, {span}"
        return (
            f"audit chain BROKEN ({self.source}): first bad record index "
            f"{self.first_bad_index}: {self.reason}"
        )


class _Walk:
    """Checks records one by one from the anchor; stops at the first failure."""

    def __init__(self, key: bytes, anchor_index: int, anchor_prev: str) -> None:
        self.key = key
        self.anchor = anchor_index
        self.expected = anchor_index
        self.prev = anchor_prev
        self.count = 0
        self.bad: int | None = None
        self.reason: str | None = None
        self.hashes: dict[int, str] = {}

    def fail(self, index: int, reason: str) -> bool:
        if self.bad is None or index < self.bad:
            self.bad, self.reason = index, reason
        return False

    def record(
        self, body: str, hash_: str, stored_index: int | None = None
    ) -> dict[str, Any] | None:
        """Check one record; returns its parsed body, or None after recording a failure."""
        at = self.expected
        try:
            obj = json.loads(body)
        except ValueError:
            self.fail(at, "record is not valid JSON")
            return None
        if not isinstance(obj, dict) or obj.get("type") != "record" or obj.get("v") != BODY_VERSION:
            self.fail(at, "record has an unknown type or version")
            return None
        if not macs_equal(hash_, mac_hex(self.key, body)):
            self.fail(at, "record hash does not match its content (edited or forged)")
            return None
        index = obj.get("index")
        if index != at or (stored_index is not None and stored_index != at):
            self.fail(at, "record index out of sequence (deleted, inserted or reordered)")
            return None
        if obj.get("prev_hash") != self.prev:
            self.fail(at, "prev_hash does not link to the previous record")
            return None
        self.prev = hash_
        self.expected += 1
        self.count += 1
        return obj

    @property
    def last(self) -> int:
        return self.expected - 1

    def finish(
        self, head: HeadState, checkpoints: Iterable[CheckpointEntry], src: Source
    ) -> VerifyResult:
        if self.bad is None:
            if self.last < head.last_index:
                self.fail(self.last + 1, "chain ends before the signed head (tail truncated)")
            elif self.last > head.last_index:
                self.fail(head.last_index + 1, "records beyond the signed head")
            elif self.prev != head.last_hash:
                self.fail(self.last, "last record does not match the signed head")
        for cp in checkpoints:
            self.checkpoint(cp)
        return VerifyResult(
            ok=self.bad is None,
            source=src,
            records=self.count,
            anchor_index=self.anchor,
            last_index=self.last,
            first_bad_index=self.bad,
            reason=self.reason,
        )

    def checkpoint(self, cp: CheckpointEntry) -> None:
        if not macs_equal(cp.mac, checkpoint_mac(self.key, cp.index, cp.hash, cp.created_at)):
            self.fail(cp.index, "checkpoint MAC does not match")
        elif cp.index < self.anchor:
            self.fail(cp.index, "checkpoint before the chain's anchor")
        elif cp.index > self.last:
            self.fail(self.last + 1, "a checkpoint lies beyond the chain's end (tail truncated)")
        elif cp.index in self.hashes and self.hashes[cp.index] != cp.hash:
            self.fail(cp.index, "record differs from its checkpoint")


def _unsigned_start(first: ChainEntry | None) -> HeadState:
    """Where to start when the head itself cannot be trusted: the first stored record."""
    if first is None:
        return HeadState(-1, GENESIS_HASH, 0, GENESIS_HASH)
    return HeadState(first.index - 1, first.prev_hash, first.index, first.prev_hash)


def _columns_match(entry: ChainEntry, obj: dict[str, Any]) -> bool:
    """The indexed columns (used by export and purge) must agree with the signed body."""
    try:
        appended = as_utc(datetime.fromisoformat(obj["appended_at"]))
        data = obj["data"]
        ts = (
            appended
            if obj["event"] == "purge"
            else as_utc(datetime.fromisoformat(data["timestamp"]))
        )
        request_id = None if obj["event"] == "purge" else data["request_id"]
    except (KeyError, TypeError, ValueError):
        return False
    return (
        entry.appended_at == appended
        and entry.ts == ts
        and entry.event == obj["event"]
        and entry.request_id == request_id
        and entry.prev_hash == obj["prev_hash"]
    )


async def verify_db(engine: AsyncEngine, key: bytes) -> VerifyResult:
    """Verify the chain stored in the database.

    Run it while the gateway is serving if you like (records appended meanwhile are
    checked too), but not during a purge.
    """
    async with engine.connect() as conn:
        head, mac = await store.read_head(conn)
        head_ok = (mac is None and head == store.PRISTINE) or macs_equal(mac, head_mac(key, head))
        if not head_ok:
            first = await store.fetch_entries(conn, -(1 << 62), 1)
            head = _unsigned_start(first[0] if first else None)
        walk = _Walk(key, head.anchor_index, head.anchor_prev_hash)
        stray = (
            await conn.execute(
                select(func.min(_RECORDS.c.idx)).where(_RECORDS.c.idx < head.anchor_index)
            )
        ).scalar_one_or_none()
        if stray is not None:
            walk.fail(stray, "record before the chain's anchor (inserted)")
        cp_indices = {cp.index for cp in await store.fetch_checkpoints(conn)}
        while walk.bad is None:
            entries = await store.fetch_entries(conn, walk.last, _CHUNK)
            if not entries:
                # The head may have moved while we walked: re-read it and go on if so.
                new_head, new_mac = await store.read_head(conn)
                if (
                    head_ok
                    and new_head.last_index > head.last_index
                    and macs_equal(new_mac, head_mac(key, new_head))
                ):
                    head = new_head
                    continue
                break
            for entry in entries:
                obj = walk.record(entry.body, entry.hash, entry.index)
                if obj is None:
                    break
                if not _columns_match(entry, obj):
                    walk.fail(entry.index, "stored columns disagree with the signed record")
                    break
                if entry.index in cp_indices:
                    walk.hashes[entry.index] = entry.hash
        checkpoints = await store.fetch_checkpoints(conn)
    if not head_ok:
        walk.fail(
            walk.last + 1, "the signed head was altered (or records after this index removed)"
        )
        head = HeadState(walk.last, walk.prev, walk.anchor, head.anchor_prev_hash)
    return walk.finish(head, checkpoints, "db")


def verify_jsonl(mirror: JsonlMirror, key: bytes) -> VerifyResult:
    """Verify the JSONL mirror in file order against its signed ``head.json``."""
    try:
        head = mirror.read_head()
    except AuditIntegrityError:
        head = None
    head_ok = head is not None
    if head is None:
        # No (trustworthy) head: start from the first record line.
        head = _jsonl_start(mirror)
        if head is None:
            return VerifyResult(True, "jsonl", 0, 0, -1)
    lines = mirror.iter_lines()
    walk = _Walk(key, head.anchor_index, head.anchor_prev_hash)
    checkpoints: list[CheckpointEntry] = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            walk.fail(walk.expected, "line is not valid JSON")
            break
        if isinstance(obj, dict) and obj.get("type") == "checkpoint":
            cp = _parse_checkpoint(obj)
            if cp is None or cp.index != walk.last:
                walk.fail(
                    walk.expected if cp is None else min(cp.index, walk.expected),
                    "checkpoint line malformed or misplaced",
                )
                break
            walk.hashes[cp.index] = walk.prev
            checkpoints.append(cp)
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("hash"), str):
            walk.fail(walk.expected, "record line has no hash")
            break
        hash_ = obj.pop("hash")
        if walk.record(canonical_json(obj), hash_) is None:
            break
    lines.close()
    if not head_ok:
        walk.fail(walk.last + 1, "head.json was altered (or records after this index removed)")
        head = HeadState(walk.last, walk.prev, walk.anchor, head.anchor_prev_hash)
    return walk.finish(head, checkpoints, "jsonl")


def _jsonl_start(mirror: JsonlMirror) -> HeadState | None:
    """Start at the first line when there is no head; ``None`` if the mirror is empty
    and there is nothing to verify."""
    lines = list(itertools.islice(mirror.iter_lines(), 1))
    if not lines:
        if mirror.head_path.exists():
            return HeadState(-1, GENESIS_HASH, 0, GENESIS_HASH)
        return None
    try:
        obj = json.loads(lines[0])
        index, prev = obj["index"], obj["prev_hash"]
        if isinstance(index, int) and isinstance(prev, str):
            return HeadState(index - 1, prev, index, prev)
    except (ValueError, KeyError, TypeError):
        pass
    return HeadState(-1, GENESIS_HASH, 0, GENESIS_HASH)


def _parse_checkpoint(obj: dict[str, Any]) -> CheckpointEntry | None:
    try:
        return CheckpointEntry(
            int(obj["index"]),
            str(obj["hash"]),
            datetime.fromisoformat(obj["time"]),
            str(obj["mac"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


async def verify_both(engine: AsyncEngine, mirror: JsonlMirror, key: bytes) -> VerifyResult:
    """Verify both copies, then check the mirror is a prefix of the database chain."""
    db = await verify_db(engine, key)
    if not db.ok:
        return db
    jl = verify_jsonl(mirror, key)
    if not jl.ok:
        return jl
    if jl.records == 0:
        return VerifyResult(True, "both", db.records, db.anchor_index, db.last_index)
    if jl.last_index > db.last_index:
        return VerifyResult(
            False,
            "both",
            db.records,
            db.anchor_index,
            db.last_index,
            db.last_index + 1,
            "the mirror holds records the database lacks (database truncated)",
        )
    async with engine.connect() as conn:
        at = await store.fetch_entries(conn, jl.last_index - 1, 1)
    mirror_head = mirror.read_head()
    if not at or mirror_head is None or at[0].hash != mirror_head.last_hash:
        return VerifyResult(
            False,
            "both",
            db.records,
            db.anchor_index,
            db.last_index,
            jl.last_index,
            "the mirror and the database disagree",
        )
    return VerifyResult(True, "both", db.records, db.anchor_index, db.last_index)
