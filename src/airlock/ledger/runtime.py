"""The ledger as the gateway uses it: one object opened at start-up, closed at shutdown.

ledger = await open_ledger(home=settings.home)          # migrates, opens the chain
await ledger.writer.submit(record)                      # per request (meter stage)
await ledger.aclose()                                   # graceful shutdown: flush all
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.db import make_engine, resolve_db_url, resolve_home
from airlock.ledger.migrate import upgrade_to_head
from airlock.ledger.reports import GroupBy, Report, build_report
from airlock.ledger.spend import Spend, current_spend, spend_usd
from airlock.ledger.writer import LedgerWriter
from airlock.privacy.audit.chain import DEFAULT_CHECKPOINT_EVERY, AuditTrail
from airlock.privacy.audit.mirror import FsyncPolicy

__all__ = ["Ledger", "LedgerOptions", "open_ledger"]


@dataclass(frozen=True, slots=True)
class LedgerOptions:
    flush_interval: float = 0.2
    max_batch: int = 500
    max_queue: int = 10_000
    backpressure_timeout: float = 10.0
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    mirror: bool = True
    fsync: FsyncPolicy = "batch"
    migrate: bool = True


class Ledger:
    """Engine, batched writer and audit trail of one process."""

    def __init__(self, engine: AsyncEngine, audit: AuditTrail, writer: LedgerWriter) -> None:
        self.engine = engine
        self.audit = audit
        self.writer = writer

    async def spend_usd(
        self, principal_id: str, since: datetime, until: datetime | None = None
    ) -> float:
        return await spend_usd(self.engine, principal_id, since, until)

    async def current_spend(self, principal_id: str, now: datetime | None = None) -> Spend:
        return await current_spend(self.engine, principal_id, now)

    async def report(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: GroupBy = "model",
        tenant: str | None = None,
    ) -> Report:
        return await build_report(self.engine, since=since, until=until, by=by, tenant=tenant)

    async def aclose(self, grace: float = 30.0) -> None:
        """Flush every submitted record, then release the database."""
        try:
            await self.writer.aclose(grace)
        finally:
            await self.engine.dispose()


async def open_ledger(
    url: str | None = None,
    *,
    home: Path | str | None = None,
    schema: str | None = None,
    options: LedgerOptions | None = None,
    audit_key_file: Path | None = None,
) -> Ledger:
    """Open the ledger at ``url`` (default: ``$AIRLOCK_DATABASE_URL``, else SQLite in
    ``home``), run pending migrations, load the audit key (``audit_key_file``, else
    ``home/audit.key``) and catch the JSONL mirror up with the database."""
    opts = options or LedgerOptions()
    home_path = resolve_home(home)
    engine = make_engine(resolve_db_url(url, home_path), schema=schema)
    try:
        if opts.migrate:
            await upgrade_to_head(engine)
        audit = AuditTrail.open(
            engine,
            home_path,
            mirror=opts.mirror,
            fsync=opts.fsync,
            checkpoint_every=opts.checkpoint_every,
            key_file=audit_key_file,
        )
        await audit.sync_mirror()
    except BaseException:
        await engine.dispose()
        raise
    writer = LedgerWriter(
        engine,
        audit,
        flush_interval=opts.flush_interval,
        max_batch=opts.max_batch,
        max_queue=opts.max_queue,
        backpressure_timeout=opts.backpressure_timeout,
    )
    return Ledger(engine, audit, writer)
