"""LedgerWriter: takes ledger writes off the request path, batched, never dropped.

``submit`` puts the record on an in-memory queue and returns at once; a background
task commits batches (every ``flush_interval`` seconds or ``max_batch`` records,
whichever comes first). Each batch is one transaction holding the usage rows *and*
the batch's audit-chain records, so a request has both or neither.

Guarantees:

* Graceful shutdown: :meth:`LedgerWriter.aclose` commits everything submitted.
* Crash (SIGKILL, OOM): the records not yet committed are lost, at most
  ``max_queue`` of them (a queue slot is freed only when its record is committed,
  so queued plus in-flight records never exceed it); while the database keeps up
  that is what was submitted during the last ``flush_interval`` plus one batch in
  flight.
* Backpressure: when the queue is full, ``submit`` waits (the request is delayed, its
  record is not dropped); after ``backpressure_timeout`` it raises
  :class:`LedgerUnavailableError` (503) so a dead database cannot hang requests.
* Failed commits are retried with backoff; a retry first checks whether the failed
  commit went through (by row id), so a batch is never written twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airlock.errors import ServiceUnavailableError
from airlock.ledger.models import USAGE
from airlock.ledger.record import RequestRecord
from airlock.privacy.audit.errors import AuditError

__all__ = [
    "ChainAppender",
    "LedgerFlushError",
    "LedgerUnavailableError",
    "LedgerWriter",
    "WriterStats",
]

_log = logging.getLogger("airlock.ledger")
_USAGE = USAGE
_MAX_BACKOFF_S = 5.0


class LedgerUnavailableError(ServiceUnavailableError):
    """The ledger queue stayed full: the database is not keeping up."""

    default_code = "ledger_unavailable"


class LedgerFlushError(RuntimeError):
    """Shutdown could not commit every record before its deadline."""

    def __init__(self, unwritten: int) -> None:
        super().__init__(f"{unwritten} ledger records could not be committed before shutdown")
        self.unwritten = unwritten


class ChainAppender(Protocol):
    """The audit trail as the writer sees it (see AuditTrail.append_batch)."""

    async def append_batch(
        self, conn: AsyncConnection, records: Sequence[RequestRecord]
    ) -> Callable[[], Awaitable[None]]: ...


@dataclass(slots=True)
class WriterStats:
    submitted: int = 0
    written: int = 0
    batches: int = 0
    retries: int = 0
    backpressure_waits: int = 0


_Item = tuple[str, RequestRecord] | None  # None wakes the loop at shutdown


class LedgerWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        audit: ChainAppender | None = None,
        *,
        flush_interval: float = 0.2,
        max_batch: int = 500,
        max_queue: int = 10_000,
        backpressure_timeout: float = 10.0,
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_queue < 1 or backpressure_timeout <= 0:
            raise ValueError("writer intervals, sizes and timeouts must be positive")
        self.engine = engine
        self.audit = audit
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.backpressure_timeout = backpressure_timeout
        self.stats = WriterStats()
        # One slot more than max_queue for the shutdown wake-up item.
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(max_queue + 1)
        self._slots = asyncio.Semaphore(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def loss_bound(self) -> int:
        """Most records a crash can lose (queued and in flight together)."""
        return self.max_queue

    @property
    def pending(self) -> int:
        return self.stats.submitted - self.stats.written

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="airlock-ledger-writer")

    async def submit(self, record: RequestRecord) -> None:
        """Queue one record; returns at once unless the queue is full (see module doc)."""
        if self._closing:
            raise LedgerUnavailableError("the ledger is shutting down")
        if not isinstance(record, RequestRecord):
            raise TypeError("submit() takes a RequestRecord")
        if self._task is not None and self._task.done():
            raise LedgerUnavailableError("the ledger writer has stopped")
        self.start()
        if self._slots.locked():
            self.stats.backpressure_waits += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.backpressure_timeout)
            except TimeoutError:
                raise LedgerUnavailableError(
                    "the usage ledger is not keeping up; try again shortly"
                ) from None
        else:
            await self._slots.acquire()  # immediate: not locked
        self._queue.put_nowait((uuid.uuid4().hex, record))
        self.stats.submitted += 1

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        if self._task is not None:
            await self._queue.join()

    async def aclose(self, grace: float = 30.0) -> None:
        """Stop accepting records and commit all queued ones."""
        self._closing = True
        if self._task is None:
            return
        self._queue.put_nowait(None)
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            with_unwritten = self.pending
            await asyncio.gather(self._task, return_exceptions=True)
            raise LedgerFlushError(with_unwritten)
        self._task.result()

    # -- background task -------------------------------------------------------

    async def _run(self) -> None:
        stop = False
        while not (stop and self._queue.empty()):
            batch, saw_stop = await self._collect()
            stop = stop or saw_stop
            if batch:
                await self._write(batch)
                self.stats.written += len(batch)
                self.stats.batches += 1
                for _ in batch:
                    self._slots.release()
                    self._queue.task_done()

    async def _collect(self) -> tuple[list[tuple[str, RequestRecord]], bool]:
        batch: list[tuple[str, RequestRecord]] = []
        stop = False
        item = await self._queue.get()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_interval
        while True:
            if item is None:
                self._queue.task_done()
                stop = True
            else:
                batch.append(item)
            if len(batch) >= self.max_batch:
                break
            if stop or self._closing:
                # Shutting down: take what is queued without waiting.
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
        return batch, stop

    async def _write(self, batch: list[tuple[str, RequestRecord]]) -> None:
        delay = 0.05
        while True:
            try:
                await self._commit(batch)
                return
            except (SQLAlchemyError, OSError, AuditError) as exc:
                # Metadata only: the exception text may quote bound parameters.
                _log.error(
                    "ledger batch of %d failed (%s); retrying in %.2fs",
                    len(batch),
                    type(exc).__name__,
                    delay,
                )
            self.stats.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)
            if await self._already_committed(batch):
                return

    async def _already_committed(self, batch: list[tuple[str, RequestRecord]]) -> bool:
        try:
            async with self.engine.connect() as conn:
                found = await conn.execute(
                    select(_USAGE.c.id).where(_USAGE.c.id.in_([row_id for row_id, _ in batch]))
                )
                return found.first() is not None
        except (SQLAlchemyError, OSError):
            return False

    async def _commit(self, batch: list[tuple[str, RequestRecord]]) -> None:
        after: Callable[[], Awaitable[None]] | None = None
        async with self.engine.begin() as conn:
            await conn.execute(insert(_USAGE), [usage_row(rid, rec) for rid, rec in batch])
            if self.audit is not None:
                after = await self.audit.append_batch(conn, [rec for _, rec in batch])
        if after is not None:
            await after()


def usage_row(row_id: str, record: RequestRecord) -> dict[str, object]:
    return {
        "id": row_id,
        "request_id": record.request_id,
        "ts": record.timestamp,
        "principal_id": record.principal_id,
        "tenant": record.tenant,
        "key_kind": record.key_kind,
        "endpoint": record.endpoint,
        "requested_model": record.requested_model,
        "served_model": record.served_model,
        "deployment": record.deployment,
        "provider": record.provider,
        "region": record.region,
        "tier": record.tier,
        "route_reason": record.route_reason,
        "sensitive": record.sensitive,
        "entity_counts": dict(record.entity_counts),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": float(record.cost_usd),
        "baseline_cost_usd": float(record.baseline_cost_usd),
        "latency_ms": float(record.latency_ms),
        "ttft_ms": record.ttft_ms,
        "status": record.status,
        "finish_reason": record.finish_reason,
        "error_type": record.error_type,
        "stream": record.stream,
    }
