"""Appending to the chain: order, links, checkpoints, mirror, concurrency, keys."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.models import AUDIT_CHECKPOINTS, AUDIT_RECORDS
from airlock.ledger.record import RequestRecord
from airlock.privacy.audit import (
    AuditIntegrityError,
    AuditKeyError,
    AuditTrail,
    JsonlMirror,
    load_key,
    verify_both,
    verify_db,
    verify_jsonl,
)
from airlock.privacy.audit._canonical import GENESIS_HASH

pytestmark = pytest.mark.anyio
MakeRecord = Callable[..., RequestRecord]


async def test_records_link_by_index_and_prev_hash(
    trail: AuditTrail, engine: AsyncEngine, make_record: MakeRecord
) -> None:
    entries = [await trail.append(make_record()) for _ in range(12)]
    assert [e.index for e in entries] == list(range(12))
    assert entries[0].prev_hash == GENESIS_HASH
    for a, b in itertools.pairwise(entries):
        assert b.prev_hash == a.hash
    body = json.loads(entries[3].body)
    assert body["index"] == 3
    assert body["event"] == "request"
    assert body["data"]["request_id"] == entries[3].request_id
    async with engine.connect() as conn:
        cps = (await conn.execute(select(AUDIT_CHECKPOINTS.c.idx))).scalars().all()
    assert sorted(cps) == [4, 9]  # every 5 records
    for result in (
        await verify_db(engine, trail.key),
        verify_jsonl(trail.mirror, trail.key),  # type: ignore[arg-type]
        await verify_both(engine, trail.mirror, trail.key),  # type: ignore[arg-type]
    ):
        assert result.ok, result.describe()
        assert result.records == 12
        assert result.last_index == 11


async def test_mirror_lines_and_checkpoints(trail: AuditTrail, make_record: MakeRecord) -> None:
    for _ in range(6):
        await trail.append(make_record())
    assert trail.mirror is not None
    lines = [json.loads(x) for x in trail.mirror.path.read_text().splitlines()]
    kinds = [x["type"] for x in lines]
    assert kinds == ["record"] * 5 + ["checkpoint"] + ["record"]
    assert lines[5]["index"] == 4
    assert lines[5]["hash"] == lines[4]["hash"]
    head = json.loads(trail.mirror.head_path.read_text())
    assert head["last_index"] == 5
    assert head["size"] == trail.mirror.path.stat().st_size


async def test_concurrent_appends_form_one_chain(
    trail: AuditTrail, engine: AsyncEngine, make_record: MakeRecord
) -> None:
    records = [make_record() for _ in range(60)]
    # A TaskGroup cancels the other appends if one fails, so a failure is reported
    # instead of leaving connections busy under the engine fixture's dispose().
    async with asyncio.TaskGroup() as tg:
        for r in records:
            tg.create_task(trail.append(r))
    async with engine.connect() as conn:
        idx = (await conn.execute(select(AUDIT_RECORDS.c.idx).order_by("idx"))).scalars().all()
        ids = (await conn.execute(select(AUDIT_RECORDS.c.request_id))).scalars().all()
    assert list(idx) == list(range(60))
    assert sorted(ids) == sorted(r.request_id for r in records)
    assert (await verify_both(engine, trail.mirror, trail.key)).ok  # type: ignore[arg-type]


async def test_two_trails_on_one_database_share_the_chain(
    engine: AsyncEngine, home: Path, tmp_path: Path, make_record: MakeRecord
) -> None:
    """Two replicas: same database and key, each with its own mirror directory."""
    first = AuditTrail.open(engine, home)
    key_file = home / "audit.key"
    other_home = tmp_path / "replica2"
    other_home.mkdir()
    (other_home / "audit.key").write_bytes(key_file.read_bytes())
    os.chmod(other_home / "audit.key", 0o600)
    second = AuditTrail.open(engine, other_home)
    async with asyncio.TaskGroup() as tg:
        for _ in range(15):
            for t in (first, second):
                tg.create_task(t.append(make_record()))
    assert (await verify_db(engine, first.key)).ok
    # Each replica's mirror holds the whole chain so far, the other's records included.
    for trail in (first, second):
        await trail.sync_mirror()
        result = verify_jsonl(trail.mirror, trail.key)  # type: ignore[arg-type]
        assert result.ok
        assert result.records == 30


async def test_a_replica_with_another_key_cannot_append(
    trail: AuditTrail, engine: AsyncEngine, make_record: MakeRecord
) -> None:
    await trail.append(make_record())
    impostor = AuditTrail(engine, b"k" * 32)
    with pytest.raises(AuditIntegrityError, match="different audit key"):
        await impostor.append(make_record())
    result = await verify_db(engine, b"k" * 32)
    assert not result.ok
    assert result.first_bad_index == 0


async def test_key_file_is_created_private_and_reused(home: Path) -> None:
    from airlock.privacy.audit import load_or_create_key

    key = load_or_create_key(home / "audit.key")
    assert len(key) == 32
    assert stat.S_IMODE((home / "audit.key").stat().st_mode) == 0o600
    assert load_or_create_key(home / "audit.key") == key


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("00" * 32, 0o644, "group or others"),
        ("not hex", 0o600, "not hex"),
        ("00" * 8, 0o600, "fewer than"),
    ],
)
def test_bad_key_files_are_refused(tmp_path: Path, content: str, mode: int, message: str) -> None:
    path = tmp_path / "audit.key"
    path.write_text(content)
    os.chmod(path, mode)
    with pytest.raises(AuditKeyError, match=message):
        load_key(path)
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_key(tmp_path / "missing.key")


async def test_mirror_catches_up_after_appends_it_missed(
    engine: AsyncEngine, home: Path, make_record: MakeRecord
) -> None:
    no_mirror = AuditTrail.open(engine, home, mirror=False)
    for _ in range(7):
        await no_mirror.append(make_record())
    trail = AuditTrail.open(engine, home, checkpoint_every=5)
    await trail.append(make_record())  # mirror is behind: sync reads the gap from the db
    result = await verify_both(engine, trail.mirror, trail.key)  # type: ignore[arg-type]
    assert result.ok
    assert result.records == 8


async def test_mirror_ahead_of_database_is_refused(
    engine: AsyncEngine, home: Path, tmp_path: Path, make_record: MakeRecord
) -> None:
    from airlock.ledger.db import make_engine
    from airlock.ledger.migrate import upgrade_to_head

    trail = AuditTrail.open(engine, home)
    for _ in range(3):
        await trail.append(make_record())
    # A fresh (replaced) database under the same home: the mirror is ahead of it.
    fresh = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    await upgrade_to_head(fresh)
    try:
        replaced = AuditTrail.open(fresh, home)
        with pytest.raises(AuditIntegrityError, match="beyond the database"):
            await replaced.sync_mirror()
    finally:
        await fresh.dispose()


async def test_mirror_drops_an_unsigned_tail_left_by_a_crash(
    trail: AuditTrail, engine: AsyncEngine, make_record: MakeRecord
) -> None:
    for _ in range(3):
        await trail.append(make_record())
    mirror = trail.mirror
    assert isinstance(mirror, JsonlMirror)
    # A process died after writing a line but before updating head.json.
    with open(mirror.path, "a") as fh:
        fh.write('{"type":"record","index":3,"half written\n')
    assert not verify_jsonl(mirror, trail.key).ok
    await trail.append(make_record())
    result = verify_jsonl(mirror, trail.key)
    assert result.ok
    assert result.records == 4
