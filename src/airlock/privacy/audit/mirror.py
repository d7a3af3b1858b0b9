"""The append-only JSONL mirror of the chain: ``$AIRLOCK_HOME/audit/audit.jsonl``.

The database is the source of truth; the mirror is a second copy on the local disk
that an auditor can verify without database access. After every committed append the
mirror catches up from where *it* stands (its ``head.json``), reading from the
database whatever it lacks, so it is always a complete prefix of the chain: also
after a crash between commit and mirror write, and when several replicas share the
database (each replica's mirror then holds every record, including other replicas').

Durability: with ``fsync="batch"`` (default) the file is fsynced once per sync, i.e.
once per ledger batch, before ``head.json`` (which records the file's size) is
atomically replaced; ``"never"`` leaves flushing to the OS. Lines beyond the size in
``head.json`` were written by a process that died before signing them; the next sync
drops them and rewrites them from the database. A process that shares the directory
with another takes an exclusive ``flock`` on ``.lock`` for the whole sync.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import IO, Literal, Protocol

from airlock.privacy.audit._canonical import canonical_json, mac_hex, macs_equal
from airlock.privacy.audit.entries import ChainEntry, CheckpointEntry, HeadState
from airlock.privacy.audit.errors import AuditIntegrityError

__all__ = [
    "HEAD_FILENAME",
    "MIRROR_FILENAME",
    "FsyncPolicy",
    "JsonlMirror",
    "MirrorSource",
]

MIRROR_FILENAME = "audit.jsonl"
HEAD_FILENAME = "head.json"
_LOCK_FILENAME = ".lock"
_FETCH_CHUNK = 2000
# Back-off while another sync holds the mirror's lock.
_LOCK_POLL_MIN_S = 0.001
_LOCK_POLL_MAX_S = 0.05
FsyncPolicy = Literal["batch", "never"]


class MirrorSource(Protocol):
    """Where a lagging mirror reads the records it lacks (the database)."""

    async def db_head(self) -> HeadState: ...

    async def fetch(
        self, after: int, limit: int
    ) -> tuple[list[ChainEntry], list[CheckpointEntry]]: ...


class JsonlMirror:
    def __init__(self, directory: Path, key: bytes, fsync: FsyncPolicy = "batch") -> None:
        self.directory = directory
        self.path = directory / MIRROR_FILENAME
        self.head_path = directory / HEAD_FILENAME
        self._key = key
        self._fsync = fsync

    # -- head ---------------------------------------------------------------

    def read_head(self) -> HeadState | None:
        """The mirror's signed head, or ``None`` for a mirror never written."""
        state = self._read_state()
        return None if state is None else state[0]

    def _read_state(self) -> tuple[HeadState, int] | None:
        """Head and the file size it was written at (both covered by the MAC)."""
        try:
            raw = json.loads(self.head_path.read_text(encoding="ascii"))
            head = HeadState(
                int(raw["last_index"]),
                str(raw["last_hash"]),
                int(raw["anchor_index"]),
                str(raw["anchor_prev_hash"]),
            )
            size, mac = int(raw["size"]), raw["mac"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise AuditIntegrityError(f"{self.head_path} is unreadable or malformed") from None
        if not macs_equal(mac, self._head_mac(head, size)):
            raise AuditIntegrityError(f"the MAC of {self.head_path} does not match")
        return head, size

    def _head_mac(self, head: HeadState, size: int) -> str:
        return mac_hex(self._key, canonical_json({**head.to_json_dict(), "size": size}))

    def _write_head(self, head: HeadState) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        obj = {**head.to_json_dict(), "size": size, "mac": self._head_mac(head, size)}
        tmp = self.head_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(canonical_json(obj) + "\n")
            fh.flush()
            if self._fsync == "batch":
                os.fsync(fh.fileno())
        os.replace(tmp, self.head_path)

    def _recover(self) -> HeadState | None:
        """Read the head and drop lines written after it by a process that died
        before updating it (they were never signed into the head)."""
        state = self._read_state()
        if state is None:
            return None
        head, size = state
        actual = self.path.stat().st_size if self.path.exists() else 0
        if actual < size:
            raise AuditIntegrityError(
                f"{self.path} is shorter than its head records: the mirror was truncated; "
                "move the audit directory aside to rebuild it from the database"
            )
        if actual > size:
            with open(self.path, "r+b") as fh:
                fh.truncate(size)
                if self._fsync == "batch":
                    os.fsync(fh.fileno())
        return head

    # -- sync ---------------------------------------------------------------

    async def sync(
        self,
        source: MirrorSource,
        entries: Sequence[ChainEntry] = (),
        checkpoints: Sequence[CheckpointEntry] = (),
    ) -> None:
        """Bring the mirror up to date; ``entries`` are the records just committed."""
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        lock_fd = await self._acquire_lock()
        try:
            head = await asyncio.to_thread(self._recover)
            if entries and head is not None and entries[0].index == head.last_index + 1:
                await asyncio.to_thread(self._append, head, entries, checkpoints)
                return
            await self._catch_up(source, head)
        finally:
            os.close(lock_fd)  # closing releases the flock

    async def _catch_up(self, source: MirrorSource, head: HeadState | None) -> None:
        db_head = await source.db_head()
        if head is not None and head.last_index > db_head.last_index:
            raise AuditIntegrityError(
                f"the JSONL mirror ends at index {head.last_index}, beyond the database's "
                f"{db_head.last_index}: the database was rolled back or replaced"
            )
        if head is None or head.last_index + 1 < db_head.anchor_index:
            # Fresh mirror, or the database purged past it: start at the database anchor.
            head = HeadState(
                db_head.anchor_index - 1,
                db_head.anchor_prev_hash,
                db_head.anchor_index,
                db_head.anchor_prev_hash,
            )
            await asyncio.to_thread(self._reset, head)
        while head.last_index < db_head.last_index:
            entries, cps = await source.fetch(head.last_index, _FETCH_CHUNK)
            if not entries:
                break
            head = await asyncio.to_thread(self._append, head, entries, cps)

    async def _acquire_lock(self) -> int:
        """Take the directory's ``flock``, polling without blocking.

        A blocking ``flock`` would park a worker thread per waiting sync; enough
        concurrent syncs in one process fill the default executor, and the holder then
        cannot get a thread to finish its own file work: a deadlock.
        """
        fd = os.open(self.directory / _LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o600)
        delay = _LOCK_POLL_MIN_S
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _LOCK_POLL_MAX_S)
        except BaseException:
            os.close(fd)
            raise

    def _reset(self, head: HeadState) -> None:
        with open(self.path, "w", encoding="ascii") as fh:
            self._flush(fh)
        self._write_head(head)

    def _append(
        self,
        head: HeadState,
        entries: Sequence[ChainEntry],
        checkpoints: Sequence[CheckpointEntry],
    ) -> HeadState:
        if entries[0].index != head.last_index + 1 or entries[0].prev_hash != head.last_hash:
            raise AuditIntegrityError(
                f"record {entries[0].index} does not continue the JSONL mirror, "
                f"which ends at index {head.last_index}"
            )
        pending = sorted(checkpoints, key=lambda c: c.index)
        start = 0
        for i, entry in enumerate(entries):
            if entry.event == "purge":
                self._write_lines(entries[start:i], pending)
                head = self._apply_purge(head, entry)
                start = i
        self._write_lines(entries[start:], pending)
        last = entries[-1]
        head = HeadState(last.index, last.hash, head.anchor_index, head.anchor_prev_hash)
        self._write_head(head)
        return head

    def _apply_purge(self, head: HeadState, entry: ChainEntry) -> HeadState:
        data = json.loads(entry.body)["data"]
        anchor, anchor_prev = int(data["anchor_index"]), str(data["anchor_prev_hash"])
        tmp = self.path.with_suffix(".purge.tmp")
        with open(self.path, encoding="ascii") as src, open(tmp, "w", encoding="ascii") as dst:
            for line in src:
                if _line_index(line) >= anchor:
                    dst.write(line)
            self._flush(dst)
        os.replace(tmp, self.path)
        head = HeadState(head.last_index, head.last_hash, anchor, anchor_prev)
        self._write_head(head)
        return head

    def _write_lines(self, entries: Sequence[ChainEntry], pending: list[CheckpointEntry]) -> None:
        """Append records, each followed by the checkpoints taken at it (pops ``pending``)."""
        if not entries:
            return
        with open(self.path, "a", encoding="ascii") as fh:
            for entry in entries:
                fh.write(entry.jsonl_line() + "\n")
                while pending and pending[0].index <= entry.index:
                    fh.write(pending.pop(0).jsonl_line() + "\n")
            self._flush(fh)

    def _flush(self, fh: IO[str]) -> None:
        fh.flush()
        if self._fsync == "batch":
            os.fsync(fh.fileno())

    def iter_lines(self) -> Generator[str, None, None]:
        """The mirror's lines in file order (empty when it does not exist)."""
        try:
            fh = open(self.path, encoding="ascii")  # noqa: SIM115
        except FileNotFoundError:
            return
        with fh:
            yield from fh


def _line_index(line: str) -> int:
    # Lines a purge cannot parse are kept, so verify still reports them.
    try:
        index = json.loads(line).get("index")
    except (ValueError, AttributeError):
        return 1 << 62
    return index if isinstance(index, int) else 1 << 62
