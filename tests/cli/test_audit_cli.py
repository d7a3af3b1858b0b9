"""``airlock audit verify|purge|export`` on a real chain in a SQLite ledger.

The chain is written in-process through the real AuditTrail (key in AIRLOCK_HOME, JSONL
mirror, signed checkpoints); the CLI then runs as a subprocess, as an operator would.
Tampering is done the way an attacker with database access would: SQL on the file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sqlite3
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airlock.ledger.db import make_engine, resolve_db_url
from airlock.ledger.migrate import upgrade_to_head
from airlock.ledger.record import RequestRecord
from airlock.ledger.runtime import LedgerOptions, open_ledger
from airlock.privacy.audit.chain import AuditTrail
from tests.support.audit_keys import kubernetes_key, write_key_file

AIRLOCK = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "airlock"


def _record(n: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-cli-{n}",
        timestamp=datetime.now(UTC),
        principal_id="key_a",
        tenant="acme",
        key_kind="api_key",
        endpoint="/v1/chat/completions",
        requested_model="auto",
        served_model="local-llama",
        deployment="local-llama@0",
        provider="openai-compatible",
        region="eu",
        tier="self-hosted",
        route_reason="auto:simple",
        sensitive=n % 2 == 0,
        entity_counts={"US_SSN": 1} if n % 2 == 0 else {},
        prompt_tokens=10 + n,
        completion_tokens=5,
        status=200,
        finish_reason="stop",
    )


async def _append(home: Path, numbers: range, key_file: Path | None = None) -> None:
    engine = make_engine(resolve_db_url(None, home))
    try:
        await upgrade_to_head(engine)
        trail = AuditTrail.open(engine, home, checkpoint_every=3, key_file=key_file)
        await trail.sync_mirror()
        for n in numbers:
            await trail.append(_record(n))
    finally:
        await engine.dispose()


def _airlock(
    home: Path, *args: str, key_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    unset = ("AIRLOCK_DATABASE_URL", "AIRLOCK_AUDIT_KEY_FILE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["AIRLOCK_HOME"] = str(home)
    if key_file is not None:
        env["AIRLOCK_AUDIT_KEY_FILE"] = str(key_file)
    return subprocess.run(
        [str(AIRLOCK), "audit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_verify_purge_export_and_tamper_detection(tmp_path: Path) -> None:
    home = tmp_path / "home"
    asyncio.run(_append(home, range(4)))  # indexes 0..3
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    time.sleep(0.05)
    asyncio.run(_append(home, range(4, 8)))  # indexes 4..7

    ok = _airlock(home, "verify", "--source", "both")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "8 records, records 0..7" in ok.stdout

    purged = _airlock(home, "purge", "--before", cutoff.isoformat())
    assert purged.returncode == 0, purged.stderr
    assert "purged 4 audit records" in purged.stdout
    assert "starts at index 4; purge recorded as index 8" in purged.stdout

    # What is left still verifies, in the database and in the mirror, and the purge is
    # itself a record in the chain.
    after = _airlock(home, "verify", "--source", "both")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "records 4..8" in after.stdout
    exported = _airlock(home, "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["index"] for line in lines] == [4, 5, 6, 7, 8]
    assert [line["event"] for line in lines] == ["request"] * 4 + ["purge"]

    # An attacker with database access edits one record's token count.
    db = home / "airlock.db"
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM audit_records WHERE idx = 6").fetchone()
        doc = json.loads(body)
        assert "req-cli-6" in body
        edited = body.replace('"prompt_tokens":16', '"prompt_tokens":1')
        assert edited != body, doc
        conn.execute("UPDATE audit_records SET body = ? WHERE idx = 6", (edited,))
    bad = _airlock(home, "verify")
    assert bad.returncode == 1
    assert "BROKEN (db): first bad record index 6" in bad.stdout
    # The local mirror was not touched: it still verifies, and comparing shows the edit.
    assert _airlock(home, "verify", "--source", "jsonl").returncode == 0
    both = _airlock(home, "verify", "--source", "both")
    assert both.returncode == 1

    # Undo the edit, then delete a record instead.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_records SET body = ? WHERE idx = 6", (body,))
        conn.execute("DELETE FROM audit_records WHERE idx = 5")
    gap = _airlock(home, "verify")
    assert gap.returncode == 1
    assert "first bad record index 5" in gap.stdout


async def _write_usage(home: Path, stamps: list[datetime]) -> None:
    """Through the ledger writer, as the gateway does: a usage row and an audit record."""
    ledger = await open_ledger(None, home=home, options=LedgerOptions(flush_interval=0.01))
    for n, stamp in enumerate(stamps):
        await ledger.writer.submit(replace(_record(n), request_id=f"req-u-{n}", timestamp=stamp))
    await ledger.aclose()


def _usage_ids(home: Path) -> list[str]:
    with sqlite3.connect(home / "airlock.db") as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM usage ORDER BY request_id")]


def test_purge_removes_usage_rows_too_but_not_this_months(tmp_path: Path) -> None:
    home = tmp_path / "home"
    now = datetime.now(UTC)
    old = datetime(2025, 3, 1, tzinfo=UTC)
    asyncio.run(_write_usage(home, [old, old + timedelta(days=1), now]))
    later = (now + timedelta(minutes=1)).isoformat()

    kept = _airlock(home, "purge", "--before", later, "--keep-usage")
    assert kept.returncode == 0, kept.stderr
    assert "purged 3 audit records" in kept.stdout
    assert "usage rows kept" in kept.stdout
    assert _usage_ids(home) == ["req-u-0", "req-u-1", "req-u-2"]

    purged = _airlock(home, "purge", "--before", later)
    assert purged.returncode == 0, purged.stderr
    # Everything before the cut-off goes, except this UTC month's rows: budgets are
    # seeded from them.
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert f"2 usage rows before {month_start.isoformat()} removed" in purged.stdout
    assert _usage_ids(home) == ["req-u-2"]
    verified = _airlock(home, "verify", "--source", "both")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = _airlock(home, "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    # The second purge removed the first one's record (it was older than the cut-off).
    assert [(r["event"], r["purge_removed"], r["purge_usage_removed"]) for r in rows] == [
        ("purge", "1", "2")
    ]


def test_purge_defaults_to_the_configured_retention(tmp_path: Path) -> None:
    home = tmp_path / "home"
    asyncio.run(_append(home, range(3)))
    config = tmp_path / "airlock.yaml"
    config.write_text("privacy:\n  retention_days: 30\n")
    kept = _airlock(home, "purge", "--config", str(config))
    assert kept.returncode == 0, kept.stderr
    # Records appended just now are well inside 30 days: nothing goes, the purge is audited.
    assert "purged 0 audit records" in kept.stdout
    cutoff = datetime.fromisoformat(kept.stdout.split("before ")[1].split(";")[0])
    assert abs((datetime.now(UTC) - cutoff).days - 30) <= 1
    both = _airlock(home, "purge", "--before", "2020-01-01", "--retention-days", "3")
    assert both.returncode != 0
    assert "at most one" in both.stderr


def test_verify_and_purge_use_the_configured_key_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_file, _ = kubernetes_key(tmp_path / "etc-airlock")
    asyncio.run(_append(home, range(4), key_file=key_file))
    assert not (home / "audit.key").exists()

    ok = _airlock(home, "verify", "--source", "both", key_file=key_file)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "4 records, records 0..3" in ok.stdout

    # Another well-formed key: the chain does not verify under it, from the variable or
    # from --key-file (which wins over the variable).
    other = tmp_path / "other" / "audit.key"
    write_key_file(other)
    wrong = _airlock(home, "verify", key_file=other)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "BROKEN (db): first bad record index 0" in wrong.stdout
    flag = _airlock(home, "verify", "--key-file", str(other), key_file=key_file)
    assert flag.returncode == 1, flag.stdout + flag.stderr
    assert _airlock(home, "verify", "--key-file", str(key_file)).returncode == 0

    # Unset: the home key, which this chain never had, is read and not created.
    unset = _airlock(home, "verify")
    assert unset.returncode == 2
    assert f"audit key file {home / 'audit.key'} does not exist" in unset.stderr
    assert not (home / "audit.key").exists()

    purged = _airlock(home, "purge", "--before", datetime.now(UTC).isoformat(), key_file=key_file)
    assert purged.returncode == 0, purged.stderr
    assert "purged 4 audit records" in purged.stdout
    after = _airlock(home, "verify", "--source", "both", key_file=key_file)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "records 4..4" in after.stdout


def test_a_missing_or_exposed_configured_key_stops_verify_and_purge(tmp_path: Path) -> None:
    home = tmp_path / "home"
    asyncio.run(_append(home, range(2)))
    missing = tmp_path / "secrets" / "audit.key"
    for args in (("verify",), ("purge", "--before", "2020-01-01")):
        done = _airlock(home, *args, key_file=missing)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "AIRLOCK_AUDIT_KEY_FILE" in done.stderr
        assert str(missing) in done.stderr
        assert not missing.exists()
        assert not missing.parent.exists()

    exposed, hex_key = kubernetes_key(tmp_path / "etc-airlock", mode=0o444)
    done = _airlock(home, "verify", key_file=exposed)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "group or others" in done.stderr
    assert hex_key not in done.stdout + done.stderr
    # The home key (mode 0600) is not used instead of a configured one that is refused.
    assert "records" not in done.stdout
