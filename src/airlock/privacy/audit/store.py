"""SQL access to the chain: lock the head, append, read back.

Appends are serialised on the single ``audit_head`` row: the first statement of an
append transaction UPDATEs it, which takes PostgreSQL's row lock (other replicas
wait) and SQLite's write lock (SQLite allows one writer; taking the lock before any
read also avoids WAL snapshot conflicts). The chain is therefore extended in exactly
one order, whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airlock.ledger.db import as_utc
from airlock.ledger.models import AUDIT_CHECKPOINTS, AUDIT_HEAD, AUDIT_RECORDS, USAGE
from airlock.privacy.audit._canonical import GENESIS_HASH, macs_equal
from airlock.privacy.audit.entries import ChainEntry, CheckpointEntry, HeadState, head_mac
from airlock.privacy.audit.errors import AuditIntegrityError

__all__ = [
    "PRISTINE",
    "check_head",
    "count_records",
    "delete_before",
    "delete_usage_before",
    "fetch_checkpoints",
    "fetch_entries",
    "first_index_at_or_after",
    "insert_checkpoints",
    "insert_entries",
    "lock_head",
    "read_head",
    "write_head",
]

_HEAD = AUDIT_HEAD
_RECORDS = AUDIT_RECORDS
_CHECKPOINTS = AUDIT_CHECKPOINTS
PRISTINE = HeadState(-1, GENESIS_HASH, 0, GENESIS_HASH)


async def read_head(conn: AsyncConnection) -> tuple[HeadState, str | None]:
    row = (await conn.execute(select(_HEAD).where(_HEAD.c.id == 1))).one_or_none()
    if row is None:
        raise AuditIntegrityError("the audit_head row is missing; run `airlock db upgrade`")
    head = HeadState(row.last_index, row.last_hash, row.anchor_index, row.anchor_prev_hash)
    return head, row.mac


def check_head(key: bytes, head: HeadState, mac: str | None) -> None:
    """A head must carry our MAC, except the unsigned pristine state of a fresh schema."""
    if mac is None and head == PRISTINE:
        return
    if not macs_equal(mac, head_mac(key, head)):
        raise AuditIntegrityError(
            "the audit head's MAC does not match: the head was altered or this "
            "process uses a different audit key"
        )


async def lock_head(conn: AsyncConnection, key: bytes, now: datetime) -> HeadState:
    """Take the append lock (see module doc) and return the verified head."""
    result = await conn.execute(update(_HEAD).where(_HEAD.c.id == 1).values(updated_at=now))
    if result.rowcount != 1:
        raise AuditIntegrityError("the audit_head row is missing; run `airlock db upgrade`")
    head, mac = await read_head(conn)
    check_head(key, head, mac)
    return head


async def write_head(conn: AsyncConnection, key: bytes, head: HeadState) -> None:
    await conn.execute(
        update(_HEAD)
        .where(_HEAD.c.id == 1)
        .values(
            last_index=head.last_index,
            last_hash=head.last_hash,
            anchor_index=head.anchor_index,
            anchor_prev_hash=head.anchor_prev_hash,
            mac=head_mac(key, head),
        )
    )


async def insert_entries(conn: AsyncConnection, entries: Sequence[ChainEntry]) -> None:
    if entries:
        await conn.execute(
            insert(_RECORDS),
            [
                {
                    "idx": e.index,
                    "ts": e.ts,
                    "appended_at": e.appended_at,
                    "event": e.event,
                    "request_id": e.request_id,
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                    "body": e.body,
                }
                for e in entries
            ],
        )


async def insert_checkpoints(conn: AsyncConnection, cps: Sequence[CheckpointEntry]) -> None:
    if cps:
        await conn.execute(
            insert(_CHECKPOINTS),
            [
                {"idx": c.index, "hash": c.hash, "created_at": c.created_at, "mac": c.mac}
                for c in cps
            ],
        )


async def fetch_entries(conn: AsyncConnection, after: int, limit: int) -> list[ChainEntry]:
    """Records with index > ``after`` in index order (keyset pagination)."""
    rows = await conn.execute(
        select(_RECORDS).where(_RECORDS.c.idx > after).order_by(_RECORDS.c.idx).limit(limit)
    )
    return [
        ChainEntry(
            index=r.idx,
            ts=as_utc(r.ts),
            appended_at=as_utc(r.appended_at),
            event=r.event,
            request_id=r.request_id,
            prev_hash=r.prev_hash,
            hash=r.hash,
            body=r.body,
        )
        for r in rows
    ]


async def fetch_checkpoints(
    conn: AsyncConnection, low: int | None = None, high: int | None = None
) -> list[CheckpointEntry]:
    query = select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.idx)
    if low is not None:
        query = query.where(_CHECKPOINTS.c.idx >= low)
    if high is not None:
        query = query.where(_CHECKPOINTS.c.idx <= high)
    return [
        CheckpointEntry(r.idx, r.hash, as_utc(r.created_at), r.mac)
        for r in await conn.execute(query)
    ]


async def first_index_at_or_after(conn: AsyncConnection, when: datetime) -> int | None:
    found = (
        await conn.execute(select(func.min(_RECORDS.c.idx)).where(_RECORDS.c.appended_at >= when))
    ).scalar_one_or_none()
    return None if found is None else int(found)


async def count_records(conn: AsyncConnection, below: int | None = None) -> int:
    query = select(func.count()).select_from(_RECORDS)
    if below is not None:
        query = query.where(_RECORDS.c.idx < below)
    return int((await conn.execute(query)).scalar_one())


async def delete_before(conn: AsyncConnection, index: int) -> None:
    await conn.execute(delete(_RECORDS).where(_RECORDS.c.idx < index))
    await conn.execute(delete(_CHECKPOINTS).where(_CHECKPOINTS.c.idx < index))


async def delete_usage_before(conn: AsyncConnection, before: datetime) -> int:
    """Remove usage-ledger rows of requests before ``before``; how many were removed."""
    result = await conn.execute(delete(USAGE).where(USAGE.c.ts < before))
    return int(result.rowcount)
