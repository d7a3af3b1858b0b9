"""Where the ledger lives and how to connect to it.

SQLite (aiosqlite, WAL) in ``$AIRLOCK_HOME/airlock.db`` by default; PostgreSQL
(asyncpg) by URL for several replicas. All timestamps are stored in UTC.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "DB_FILENAME",
    "DatabaseUrlError",
    "as_utc",
    "default_db_url",
    "make_engine",
    "resolve_db_url",
    "resolve_home",
]

DB_FILENAME = "airlock.db"
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# How long a SQLite writer waits for another process's write lock before failing.
_SQLITE_BUSY_TIMEOUT_S = 30.0


class DatabaseUrlError(ValueError):
    """The database URL is malformed or names an unsupported driver."""


def resolve_home(home: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``home``, else ``$AIRLOCK_HOME``, else ``./.airlock``."""
    if home is not None:
        return Path(home)
    env = os.environ if environ is None else environ
    return Path(env.get("AIRLOCK_HOME") or ".airlock")


def default_db_url(home: Path) -> str:
    return f"sqlite+aiosqlite:///{(home / DB_FILENAME).resolve()}"


def resolve_db_url(
    db_url: str | None = None,
    home: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``db_url``, else ``$AIRLOCK_DATABASE_URL``, else the SQLite file in the home."""
    env = os.environ if environ is None else environ
    url = db_url or env.get("AIRLOCK_DATABASE_URL")
    if url:
        return url
    return default_db_url(resolve_home(home, env))


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError("the database URL could not be parsed") from None
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise DatabaseUrlError(
            f"unsupported database driver {parsed.drivername!r}: "
            "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
        )
    return parsed


def make_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``.

    ``schema`` (PostgreSQL only) puts every table, including Alembic's version
    table, in that schema via ``search_path``; tests use it to isolate runs.
    """
    parsed = _parse(url)
    if parsed.drivername == "sqlite+aiosqlite":
        if schema is not None:
            raise DatabaseUrlError("a schema can only be set for PostgreSQL")
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            parsed, echo=echo, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    settings = {"timezone": "UTC"}
    if schema is not None:
        if _SCHEMA.fullmatch(schema) is None:
            raise DatabaseUrlError(f"schema must match {_SCHEMA.pattern}")
        settings["search_path"] = schema
    return create_async_engine(
        parsed, echo=echo, pool_pre_ping=True, connect_args={"server_settings": settings}
    )


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (reports, verify) run beside the writer; NORMAL sync is durable
    # against a process crash (an OS crash may lose the last commits).
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
