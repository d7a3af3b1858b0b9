"""Kill a writing process with SIGKILL: at most ``max_queue`` records are lost, and the
audit chain and its mirror are intact (the mirror catches up on the next start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from airlock.ledger.db import make_engine
from airlock.ledger.runtime import open_ledger
from airlock.privacy.audit.key import load_key
from airlock.privacy.audit.verify import verify_both, verify_db

pytestmark = pytest.mark.anyio

MAX_QUEUE = 20

WRITER = textwrap.dedent(
    f"""
    import asyncio, sys
    from datetime import UTC, datetime
    from airlock.ledger.record import RequestRecord
    from airlock.ledger.runtime import LedgerOptions, open_ledger

    async def main() -> None:
        ledger = await open_ledger(
            home=sys.argv[1],
            options=LedgerOptions(flush_interval=0.05, max_batch=10, max_queue={MAX_QUEUE}),
        )
        n = 0
        while True:
            await ledger.writer.submit(RequestRecord(
                request_id=f"r{{n}}", timestamp=datetime.now(UTC), principal_id="key_a",
                tenant="t", key_kind="api_key", endpoint="/v1/chat/completions",
                requested_model="m", served_model="m", deployment=None, provider=None,
                region=None, tier="self-hosted", route_reason="explicit", sensitive=False,
                prompt_tokens=1, completion_tokens=1,
            ))
            n += 1
            print(n, flush=True)
            await asyncio.sleep(0.001)

    asyncio.run(main())
    """
)


async def test_sigkill_loses_at_most_the_documented_bound(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop("AIRLOCK_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    submitted = 0
    try:
        for line in proc.stdout:
            submitted = int(line)
            if submitted >= 400:
                break
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        submitted = max([submitted, *(int(x) for x in rest.split())])
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        proc.stdout.close()
    assert submitted >= 400, "the writer process did not get going"

    url = f"sqlite+aiosqlite:///{home / 'airlock.db'}"
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM usage"))).scalar_one()
            audits = (await conn.execute(text("SELECT count(*) FROM audit_records"))).scalar_one()
        # +1: a record may be queued before its number was printed.
        assert submitted - MAX_QUEUE <= rows <= submitted + 1
        assert audits == rows  # same transaction: both or neither
        key = load_key(home / "audit.key")
        assert (await verify_db(engine, key)).ok
    finally:
        await engine.dispose()

    # The next start catches the JSONL mirror up with whatever the database committed.
    ledger = await open_ledger(url, home=home)
    try:
        result = await verify_both(ledger.engine, ledger.audit.mirror, key)  # type: ignore[arg-type]
        assert result.ok, result.describe()
        assert result.records == rows
    finally:
        await ledger.aclose()
