"""AuditTrail: extend the hash chain, checkpoint it, mirror it, purge it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airlock.ledger.record import RequestRecord
from airlock.privacy.audit import store
from airlock.privacy.audit.entries import (
    ChainEntry,
    CheckpointEntry,
    HeadState,
    PurgeEvent,
    build_entry,
    checkpoint_mac,
)
from airlock.privacy.audit.errors import AuditError
from airlock.privacy.audit.key import load_audit_key
from airlock.privacy.audit.mirror import FsyncPolicy, JsonlMirror

__all__ = ["AppendResult", "AuditTrail", "PurgeResult"]

_log = logging.getLogger("airlock.audit")
DEFAULT_CHECKPOINT_EVERY = 1000


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one transaction appended; hand it to :meth:`AuditTrail.after_commit`."""

    entries: tuple[ChainEntry, ...]
    checkpoints: tuple[CheckpointEntry, ...]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    removed: int
    anchor_index: int
    purge_record_index: int
    usage_removed: int | None = None


class AuditTrail:
    """The hash-chained audit trail in the database, mirrored to JSONL.

    Appending happens inside a caller's transaction (the ledger writer puts a batch's
    usage rows and audit records in one transaction, so both exist or neither does);
    after commit the caller calls :meth:`after_commit` to update the mirror.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        key: bytes,
        *,
        mirror: JsonlMirror | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self.engine = engine
        self.mirror = mirror
        self.checkpoint_every = checkpoint_every
        self._key = key

    @classmethod
    def open(
        cls,
        engine: AsyncEngine,
        home: Path,
        *,
        mirror: bool = True,
        fsync: FsyncPolicy = "batch",
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        key_file: Path | None = None,
    ) -> AuditTrail:
        """The trail of ``home``: key ``key_file`` (must exist) or ``home/audit.key``
        (created on first use), mirror ``home/audit/``."""
        key = load_audit_key(home, key_file)
        jsonl = JsonlMirror(home / "audit", key, fsync) if mirror else None
        return cls(engine, key, mirror=jsonl, checkpoint_every=checkpoint_every)

    @property
    def key(self) -> bytes:
        return self._key

    # -- appending ------------------------------------------------------------

    async def append_in_transaction(
        self, conn: AsyncConnection, events: Sequence[RequestRecord | PurgeEvent]
    ) -> AppendResult:
        """Append ``events`` in order; ``conn`` must be inside a transaction."""
        head = await store.lock_head(conn, self._key, datetime.now(UTC))
        # Timestamped only once the append lock is held: a replica that waited for
        # another's append must not stamp its records earlier than the ones before
        # them, so append times follow the chain's order (to within the hosts' skew).
        now = datetime.now(UTC)
        return await self._append_locked(conn, head, events, now)

    async def _append_locked(
        self,
        conn: AsyncConnection,
        head: HeadState,
        events: Sequence[RequestRecord | PurgeEvent],
        now: datetime,
    ) -> AppendResult:
        entries: list[ChainEntry] = []
        checkpoints: list[CheckpointEntry] = []
        prev, index = head.last_hash, head.last_index + 1
        for event in events:
            entry = build_entry(self._key, index, prev, now, event)
            entries.append(entry)
            if (index + 1) % self.checkpoint_every == 0:
                mac = checkpoint_mac(self._key, index, entry.hash, now)
                checkpoints.append(CheckpointEntry(index, entry.hash, now, mac))
            prev, index = entry.hash, index + 1
        await store.insert_entries(conn, entries)
        await store.insert_checkpoints(conn, checkpoints)
        if entries:
            new_head = HeadState(
                entries[-1].index, entries[-1].hash, head.anchor_index, head.anchor_prev_hash
            )
            await store.write_head(conn, self._key, new_head)
        return AppendResult(tuple(entries), tuple(checkpoints))

    async def after_commit(self, result: AppendResult) -> None:
        """Mirror what was committed. Mirror failures are logged, not raised: the
        database holds the records and the next sync catches up."""
        if self.mirror is None:
            return
        try:
            await self.mirror.sync(self, result.entries, result.checkpoints)
        except (AuditError, OSError) as exc:
            _log.error("audit mirror sync failed: %s", type(exc).__name__)

    async def append_batch(
        self, conn: AsyncConnection, records: Sequence[RequestRecord]
    ) -> Callable[[], Awaitable[None]]:
        """The ledger writer's hook: append in its transaction, mirror after commit."""
        result = await self.append_in_transaction(conn, records)

        async def mirror() -> None:
            await self.after_commit(result)

        return mirror

    async def append(self, record: RequestRecord) -> ChainEntry:
        """Append one record in its own transaction (outside the batched writer)."""
        async with self.engine.begin() as conn:
            result = await self.append_in_transaction(conn, [record])
        await self.after_commit(result)
        return result.entries[0]

    async def sync_mirror(self) -> None:
        """Catch the mirror up with the database (start-up, after a crash). Raises."""
        if self.mirror is not None:
            await self.mirror.sync(self)

    # -- MirrorSource ----------------------------------------------------------

    async def db_head(self) -> HeadState:
        async with self.engine.connect() as conn:
            head, mac = await store.read_head(conn)
        store.check_head(self._key, head, mac)
        return head

    async def fetch(self, after: int, limit: int) -> tuple[list[ChainEntry], list[CheckpointEntry]]:
        async with self.engine.connect() as conn:
            entries = await store.fetch_entries(conn, after, limit)
            if not entries:
                return [], []
            cps = await store.fetch_checkpoints(conn, entries[0].index, entries[-1].index)
        return entries, cps

    # -- retention -------------------------------------------------------------

    async def purge(self, before: datetime, *, usage_before: datetime | None = None) -> PurgeResult:
        """Remove the records appended before ``before`` and record the purge.

        Only a prefix of the chain is removed (up to the first record appended at or
        after ``before``), and the head's anchor moves to the first kept record, so
        the rest stays verifiable. With ``usage_before``, usage-ledger rows of requests
        before it go in the same transaction (they hold the same metadata). The purge
        itself is appended as a ``purge`` record saying what was removed.
        """
        if before.utcoffset() is None:
            raise ValueError("before must be timezone-aware")
        if usage_before is not None and usage_before.utcoffset() is None:
            raise ValueError("usage_before must be timezone-aware")
        before = before.astimezone(UTC)
        usage_cut = None if usage_before is None else usage_before.astimezone(UTC)
        async with self.engine.begin() as conn:
            head = await store.lock_head(conn, self._key, datetime.now(UTC))
            now = datetime.now(UTC)  # after the lock, as in append_in_transaction
            first_kept = await store.first_index_at_or_after(conn, before)
            cut = head.last_index + 1 if first_kept is None else first_kept
            cut = max(cut, head.anchor_index)
            if cut == head.last_index + 1:
                anchor_prev = head.last_hash
            else:
                kept = await store.fetch_entries(conn, cut - 1, 1)
                anchor_prev = kept[0].prev_hash
            removed = await store.count_records(conn, below=cut)
            await store.delete_before(conn, cut)
            usage_removed = (
                None if usage_cut is None else await store.delete_usage_before(conn, usage_cut)
            )
            head = HeadState(head.last_index, head.last_hash, cut, anchor_prev)
            event = PurgeEvent(before, removed, cut, anchor_prev, usage_cut, usage_removed)
            result = await self._append_locked(conn, head, [event], now)
        await self.after_commit(result)
        _log.info(
            "audit purge removed %d records and %s usage rows; chain now starts at %d",
            removed,
            "no" if usage_removed is None else usage_removed,
            cut,
        )
        return PurgeResult(removed, cut, result.entries[0].index, usage_removed)
