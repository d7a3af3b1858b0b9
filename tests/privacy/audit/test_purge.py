"""Retention purge: records and usage rows go in one transaction, and the purge says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from airlock.ledger.db import make_engine
from airlock.ledger.models import AUDIT_RECORDS, USAGE
from airlock.ledger.record import RequestRecord
from airlock.ledger.runtime import LedgerOptions, open_ledger
from airlock.privacy.audit.chain import AuditTrail
from airlock.privacy.audit.key import load_key
from airlock.privacy.audit.verify import verify_db

from .conftest import Db

pytestmark = pytest.mark.anyio
MakeRecord = Callable[..., RequestRecord]
JUNE = datetime(2025, 6, 1, tzinfo=UTC)


async def _write(db: Db, home: Path, records: list[RequestRecord]) -> None:
    """Through the ledger writer, as the gateway does: one usage row + one audit record."""
    ledger = await open_ledger(
        db.url, home=home, schema=db.schema, options=LedgerOptions(flush_interval=0.01)
    )
    for record in records:
        await ledger.writer.submit(record)
    await ledger.aclose()


async def _usage_ids(db: Db) -> list[str]:
    engine = make_engine(db.url, schema=db.schema)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(USAGE.c.request_id).order_by(USAGE.c.request_id))
            return [str(r) for r in rows.scalars()]
    finally:
        await engine.dispose()


async def test_purge_removes_usage_rows_before_their_cutoff_in_the_same_transaction(
    db: Db, tmp_path: Path, make_record: MakeRecord
) -> None:
    home = tmp_path / "home"
    days = [JUNE + timedelta(days=d) for d in range(6)]
    await _write(
        db, home, [make_record(request_id=f"u-{i}", timestamp=t) for i, t in enumerate(days)]
    )
    engine = make_engine(db.url, schema=db.schema)
    try:
        trail = AuditTrail.open(engine, home)
        result = await trail.purge(datetime.now(UTC) + timedelta(seconds=1), usage_before=days[3])
        assert result.removed == 6
        assert result.usage_removed == 3
        assert await _usage_ids(db) == ["u-3", "u-4", "u-5"]
        async with engine.connect() as conn:
            bodies = (await conn.execute(select(AUDIT_RECORDS.c.body))).scalars().all()
        assert len(bodies) == 1  # only the purge record is left
        purge = json.loads(bodies[0])["data"]
        assert purge["removed"] == 6
        assert purge["usage_removed"] == 3
        assert datetime.fromisoformat(purge["usage_before"]) == days[3]
        verified = await verify_db(engine, load_key(home / "audit.key"))
        assert verified.ok, verified
    finally:
        await engine.dispose()


async def test_purge_without_a_usage_cutoff_keeps_every_usage_row(
    db: Db, tmp_path: Path, make_record: MakeRecord
) -> None:
    home = tmp_path / "home"
    await _write(db, home, [make_record(request_id=f"k-{i}", timestamp=JUNE) for i in range(3)])
    engine = make_engine(db.url, schema=db.schema)
    try:
        trail = AuditTrail.open(engine, home)
        result = await trail.purge(datetime.now(UTC) + timedelta(seconds=1))
        assert (result.removed, result.usage_removed) == (3, None)
        assert await _usage_ids(db) == ["k-0", "k-1", "k-2"]
        async with engine.connect() as conn:
            body = (await conn.execute(select(AUDIT_RECORDS.c.body))).scalar_one()
            count = (await conn.execute(select(func.count()).select_from(USAGE))).scalar_one()
        assert count == 3
        purge = json.loads(body)["data"]
        assert purge["usage_removed"] is None
        assert purge["usage_before"] is None
        with pytest.raises(ValueError, match="timezone-aware"):
            await trail.purge(datetime.now(UTC), usage_before=datetime(2025, 1, 1))
    finally:
        await engine.dispose()
