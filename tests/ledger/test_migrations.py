"""Alembic migrations: upgrade, downgrade and upgrade again, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from airlock.ledger.db import make_engine
from airlock.ledger.migrate import current_revision, downgrade, head_revision, upgrade_to_head
from airlock.ledger.models import Base

from .conftest import Db

pytestmark = pytest.mark.anyio

TABLES = {"usage", "audit_records", "audit_checkpoints", "audit_head", "api_keys"}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


async def test_upgrade_downgrade_upgrade(db: Db) -> None:
    engine = make_engine(db.url, schema=db.schema)
    try:
        await upgrade_to_head(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) >= TABLES
            # The hand-written migration matches the models exactly.
            assert await conn.run_sync(_diff) == []
            head = (await conn.execute(text("SELECT last_index, mac FROM audit_head"))).one()
            assert tuple(head) == (-1, None)

        await upgrade_to_head(engine)  # idempotent
        await downgrade(engine, "base")
        assert await current_revision(engine) is None
        async with engine.connect() as conn:
            assert not (TABLES & await conn.run_sync(_tables))

        await upgrade_to_head(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) >= TABLES
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_one_step_from_head_drops_everything(db: Db) -> None:
    await upgrade_to_head(db.url, schema=db.schema)
    await downgrade(db.url, "-1", schema=db.schema)
    assert await current_revision(db.url, schema=db.schema) is None


async def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x' / 'airlock.db'}")
    try:
        await upgrade_to_head(engine)
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        assert mode == "wal"
        assert (tmp_path / "x" / "airlock.db").exists()
    finally:
        await engine.dispose()


async def test_unknown_revision_fails(db: Db) -> None:
    from alembic.util.exc import CommandError

    await upgrade_to_head(db.url, schema=db.schema)
    with pytest.raises(CommandError):
        await downgrade(db.url, "no_such_revision", schema=db.schema)
