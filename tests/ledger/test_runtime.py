"""open_ledger and the audit key: a configured key file, or ``home/audit.key``."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.ledger.db import make_engine
from airlock.ledger.record import RequestRecord
from airlock.ledger.runtime import LedgerOptions, open_ledger
from airlock.privacy.audit.errors import AuditKeyError
from airlock.privacy.audit.verify import verify_db
from tests.support.audit_keys import write_key_file

from .conftest import Db

pytestmark = pytest.mark.anyio
MakeRecord = Callable[..., RequestRecord]


def _key_file(path: Path, mode: int = 0o400) -> bytes:
    return bytes.fromhex(write_key_file(path, mode))


async def test_records_are_chained_with_the_configured_key(
    db: Db, tmp_path: Path, make_record: MakeRecord
) -> None:
    key = _key_file(tmp_path / "secrets" / "audit.key")
    home = tmp_path / "home"
    ledger = await open_ledger(
        db.url,
        home=home,
        schema=db.schema,
        options=LedgerOptions(flush_interval=0.05),
        audit_key_file=tmp_path / "secrets" / "audit.key",
    )
    for _ in range(3):
        await ledger.writer.submit(make_record())
    await ledger.aclose()
    assert not (home / "audit.key").exists()
    engine = make_engine(db.url, schema=db.schema)
    try:
        good = await verify_db(engine, key)
        assert good.ok
        assert good.records == 3
        other = await verify_db(engine, secrets.token_bytes(32))
        assert not other.ok
        assert other.first_bad_index == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("exists", "mode"), [(False, 0o400), (True, 0o444)])
async def test_a_missing_or_shared_key_file_stops_the_ledger_opening(
    db: Db, tmp_path: Path, exists: bool, mode: int
) -> None:
    path = tmp_path / "secrets" / "audit.key"
    if exists:
        _key_file(path, mode)
    with pytest.raises(AuditKeyError, match="AIRLOCK_AUDIT_KEY_FILE"):
        await open_ledger(db.url, home=tmp_path / "home", schema=db.schema, audit_key_file=path)
    assert path.exists() is exists
    assert not (tmp_path / "home" / "audit.key").exists()


async def test_without_a_key_file_the_home_key_is_created_and_used(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    home = tmp_path / "home"
    ledger = await open_ledger(home=home)
    await ledger.writer.submit(make_record())
    await ledger.aclose()
    key_path = home / "audit.key"
    assert key_path.stat().st_mode & 0o777 == 0o600
    engine = make_engine(f"sqlite+aiosqlite:///{home / 'airlock.db'}")
    try:
        assert (await verify_db(engine, bytes.fromhex(key_path.read_text().strip()))).ok
    finally:
        await engine.dispose()
