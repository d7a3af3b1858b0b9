"""LedgerWriter: batching, flush on close, backpressure, retries, one row per record."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airlock.ledger.db import make_engine
from airlock.ledger.migrate import upgrade_to_head
from airlock.ledger.models import AUDIT_RECORDS, USAGE
from airlock.ledger.record import RequestRecord
from airlock.ledger.runtime import LedgerOptions, open_ledger
from airlock.ledger.writer import LedgerFlushError, LedgerUnavailableError, LedgerWriter
from airlock.privacy.audit.verify import verify_db

from .conftest import Db

pytestmark = pytest.mark.anyio
MakeRecord = Callable[..., RequestRecord]


async def _count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_every_submitted_record_becomes_one_row_and_one_audit_record(
    db: Db, tmp_path: Path, make_record: MakeRecord
) -> None:
    ledger = await open_ledger(
        db.url,
        home=tmp_path,
        schema=db.schema,
        options=LedgerOptions(flush_interval=0.05, max_batch=7, checkpoint_every=10),
    )
    records = [make_record(prompt_tokens=i) for i in range(40)]
    await asyncio.gather(*(ledger.writer.submit(r) for r in records))
    await ledger.writer.flush()
    assert ledger.writer.stats.written == 40
    assert ledger.writer.stats.batches >= 6  # max_batch=7
    engine = make_engine(db.url, schema=db.schema)
    try:
        await ledger.aclose()
        assert await _count(engine, USAGE) == 40
        assert await _count(engine, AUDIT_RECORDS) == 40
        async with engine.connect() as conn:
            ids = (await conn.execute(select(USAGE.c.request_id))).scalars().all()
            audit_ids = (await conn.execute(select(AUDIT_RECORDS.c.request_id))).scalars().all()
            tokens = (await conn.execute(select(func.sum(USAGE.c.prompt_tokens)))).scalar_one()
        assert sorted(ids) == sorted(r.request_id for r in records) == sorted(audit_ids)
        assert tokens == sum(range(40))
        from airlock.privacy.audit.key import load_key

        result = await verify_db(engine, load_key(tmp_path / "audit.key"))
        assert result.ok
        assert result.records == 40
    finally:
        await engine.dispose()


async def test_aclose_flushes_records_submitted_just_before(
    db: Db, tmp_path: Path, make_record: MakeRecord
) -> None:
    # A long flush interval: only aclose() can have written these.
    ledger = await open_ledger(
        db.url,
        home=tmp_path,
        schema=db.schema,
        options=LedgerOptions(flush_interval=3600, max_batch=1000),
    )
    for i in range(25):
        await ledger.writer.submit(make_record(request_id=f"late-{i}"))
    await ledger.aclose()
    engine = make_engine(db.url, schema=db.schema)
    try:
        assert await _count(engine, USAGE) == 25
    finally:
        await engine.dispose()


async def test_record_fields_round_trip_through_the_usage_table(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'airlock.db'}"
    ledger = await open_ledger(url, home=tmp_path)
    rec = make_record(entity_counts={"US_SSN": 2}, sensitive=True, stream=True, ttft_ms=None)
    await ledger.writer.submit(rec)
    await ledger.aclose()
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(USAGE))).one()
    finally:
        await engine.dispose()
    assert row.entity_counts == {"US_SSN": 2}
    assert row.sensitive is True
    assert row.stream is True
    assert row.ttft_ms is None
    assert row.served_model == rec.served_model
    assert row.route_reason == "auto:simple"
    assert row.cost_usd == pytest.approx(rec.cost_usd)


class _Gate:
    """An audit appender that waits for a gate, to hold batches in flight."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.calls = 0

    async def append_batch(
        self, conn: AsyncConnection, records: Sequence[RequestRecord]
    ) -> Callable[[], Awaitable[None]]:
        self.calls += 1
        await self.open.wait()

        async def after() -> None:
            return None

        return after


async def _migrated(tmp_path: Path) -> AsyncEngine:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'airlock.db'}")
    await upgrade_to_head(engine)
    return engine


async def test_full_queue_blocks_the_caller_instead_of_dropping(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    engine = await _migrated(tmp_path)
    gate = _Gate()
    writer = LedgerWriter(engine, gate, flush_interval=0.01, max_batch=2, max_queue=2)
    try:
        await writer.submit(make_record())
        await writer.submit(make_record())
        blocked = asyncio.create_task(writer.submit(make_record()))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not blocked.done()  # waiting for a slot, not dropped
        assert writer.stats.backpressure_waits == 1
        gate.open.set()
        await blocked
        await writer.aclose()
        assert await _count(engine, USAGE) == 3
        assert writer.loss_bound == 2
    finally:
        await engine.dispose()


async def test_backpressure_gives_up_with_503_after_the_timeout(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    engine = await _migrated(tmp_path)
    gate = _Gate()
    writer = LedgerWriter(
        engine, gate, flush_interval=0.01, max_batch=1, max_queue=1, backpressure_timeout=0.05
    )
    try:
        await writer.submit(make_record())
        with pytest.raises(LedgerUnavailableError) as info:
            await writer.submit(make_record())
        assert info.value.status_code == 503
        gate.open.set()
        await writer.aclose()
        assert await _count(engine, USAGE) == 1
    finally:
        await engine.dispose()


class _FlakyOnce:
    """Fails the first batch inside the transaction (rolled back), then succeeds."""

    def __init__(self) -> None:
        self.calls = 0

    async def append_batch(
        self, conn: AsyncConnection, records: Sequence[RequestRecord]
    ) -> Callable[[], Awaitable[None]]:
        self.calls += 1
        if self.calls == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

        async def after() -> None:
            return None

        return after


async def test_failed_batch_is_retried_and_written_exactly_once(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    engine = await _migrated(tmp_path)
    flaky = _FlakyOnce()
    writer = LedgerWriter(engine, flaky, flush_interval=0.01, max_batch=100)
    try:
        for _ in range(5):
            await writer.submit(make_record())
        await writer.aclose()
        assert flaky.calls >= 2
        assert writer.stats.retries >= 1
        assert await _count(engine, USAGE) == 5
    finally:
        await engine.dispose()


class _CommitThenFail:
    """Simulates a commit whose acknowledgement is lost: the rows are in, yet the
    writer sees an error (raised after commit by the post-commit hook's caller)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.calls = 0

    async def append_batch(
        self, conn: AsyncConnection, records: Sequence[RequestRecord]
    ) -> Callable[[], Awaitable[None]]:
        self.calls += 1
        first = self.calls == 1

        async def after() -> None:
            if first:
                raise OperationalError("COMMIT", {}, Exception("connection reset"))

        return after


async def test_retry_after_a_commit_that_went_through_does_not_duplicate(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    engine = await _migrated(tmp_path)
    hook = _CommitThenFail(engine)
    writer = LedgerWriter(engine, hook, flush_interval=0.01, max_batch=100)
    try:
        for _ in range(4):
            await writer.submit(make_record())
        await writer.aclose()
        assert writer.stats.retries == 1
        assert await _count(engine, USAGE) == 4
    finally:
        await engine.dispose()


class _AlwaysFails:
    async def append_batch(
        self, conn: AsyncConnection, records: Sequence[RequestRecord]
    ) -> Callable[[], Awaitable[None]]:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))


async def test_aclose_reports_records_it_could_not_commit(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    engine = await _migrated(tmp_path)
    writer = LedgerWriter(engine, _AlwaysFails(), flush_interval=0.01)
    try:
        for _ in range(3):
            await writer.submit(make_record())
        with pytest.raises(LedgerFlushError) as info:
            await writer.aclose(grace=0.3)
        assert info.value.unwritten == 3
        with pytest.raises(LedgerUnavailableError):
            await writer.submit(make_record())
    finally:
        await engine.dispose()


async def test_submit_rejects_non_records_and_bad_settings(tmp_path: Path) -> None:
    engine = await _migrated(tmp_path)
    try:
        writer = LedgerWriter(engine)
        with pytest.raises(TypeError):
            await writer.submit({"request_id": "x"})  # type: ignore[arg-type]
        for bad in ({"flush_interval": 0}, {"max_batch": 0}, {"max_queue": 0}):
            with pytest.raises(ValueError, match="positive"):
                LedgerWriter(engine, **bad)  # type: ignore[arg-type]
        await writer.aclose()
    finally:
        await engine.dispose()


async def test_sqlite_file_lives_in_airlock_home(tmp_path: Path, make_record: MakeRecord) -> None:
    ledger = await open_ledger(home=tmp_path / "home")
    await ledger.writer.submit(make_record())
    await ledger.aclose()
    assert (tmp_path / "home" / "airlock.db").exists()
    assert (tmp_path / "home" / "audit.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "home" / "audit" / "audit.jsonl").read_text().count("\n") == 1
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'home' / 'airlock.db'}")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM usage"))).scalar_one() == 1
    finally:
        await engine.dispose()
