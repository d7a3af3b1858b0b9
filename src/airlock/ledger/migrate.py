"""Run the Alembic migrations programmatically (start-up and ``airlock db``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airlock.ledger.db import make_engine

__all__ = [
    "MIGRATIONS_DIR",
    "current_revision",
    "downgrade",
    "head_revision",
    "open_migrated_engine",
    "upgrade",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock class for migrations (the object id is the schema's hash).
_PG_MIGRATION_LOCK = 0x61697231


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:
        raise RuntimeError("the migrations directory has no revisions")
    return head


async def _with_engine(
    target: str | AsyncEngine, schema: str | None, revision: str, up: bool
) -> None:
    engine = make_engine(target, schema=schema) if isinstance(target, str) else target
    try:
        async with engine.begin() as conn:
            await _serialise(conn)
            if up:
                await conn.run_sync(lambda c: command.upgrade(_config(c), revision))
            else:
                await conn.run_sync(lambda c: command.downgrade(_config(c), revision))
    finally:
        if isinstance(target, str):
            await engine.dispose()


async def _serialise(conn: AsyncConnection) -> None:
    """Let one process at a time migrate a PostgreSQL schema.

    Replicas starting together on a fresh database would otherwise all run the same
    CREATE TABLEs, and all but one fail on a duplicate catalog entry. The lock is held
    until the migration's transaction ends; a waiter then finds the schema at head.
    SQLite needs nothing here: a replica set shares PostgreSQL, not a SQLite file.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, hashtext(coalesce(current_schema(), '')))"),
            {"cls": _PG_MIGRATION_LOCK},
        )


async def upgrade(
    target: str | AsyncEngine, revision: str = "head", *, schema: str | None = None
) -> None:
    """Upgrade the database at ``target`` (URL or engine) to ``revision``."""
    await _with_engine(target, schema, revision, up=True)


async def upgrade_to_head(target: str | AsyncEngine, *, schema: str | None = None) -> None:
    """Bring the schema up to date; call once at start-up."""
    await upgrade(target, "head", schema=schema)


async def downgrade(
    target: str | AsyncEngine, revision: str = "-1", *, schema: str | None = None
) -> None:
    """Downgrade to ``revision`` (``base`` drops every table, ``-1`` undoes one step)."""
    await _with_engine(target, schema, revision, up=False)


async def current_revision(target: str | AsyncEngine, *, schema: str | None = None) -> str | None:
    engine = make_engine(target, schema=schema) if isinstance(target, str) else target
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        if isinstance(target, str):
            await engine.dispose()


async def open_migrated_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine on ``url`` whose schema is at head (for CLI commands)."""
    engine = make_engine(url, schema=schema)
    try:
        await upgrade_to_head(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine
