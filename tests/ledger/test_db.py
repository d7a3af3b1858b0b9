"""Database URL resolution and engine construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.ledger.db import (
    DatabaseUrlError,
    default_db_url,
    make_engine,
    resolve_db_url,
    resolve_home,
)


def test_default_is_sqlite_in_airlock_home(tmp_path: Path) -> None:
    url = resolve_db_url(environ={"AIRLOCK_HOME": str(tmp_path)})
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'airlock.db'}"
    assert resolve_home(environ={}) == Path(".airlock")


def test_explicit_url_beats_env_beats_home(tmp_path: Path) -> None:
    env = {"AIRLOCK_DATABASE_URL": "postgresql+asyncpg://u@h/db", "AIRLOCK_HOME": str(tmp_path)}
    assert resolve_db_url(environ=env) == "postgresql+asyncpg://u@h/db"
    assert resolve_db_url("sqlite+aiosqlite:///x.db", environ=env) == "sqlite+aiosqlite:///x.db"
    assert resolve_db_url(home=tmp_path, environ={}) == default_db_url(tmp_path)


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite:///x.db", "postgresql://u@h/db", "not a url"]
)
def test_unsupported_drivers_are_refused(url: str) -> None:
    with pytest.raises(DatabaseUrlError):
        make_engine(url)


def test_schema_only_for_postgres_and_must_be_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUrlError):
        make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", schema="s")
    with pytest.raises(DatabaseUrlError):
        make_engine("postgresql+asyncpg://u@h/db", schema='x"; DROP TABLE usage; --')
