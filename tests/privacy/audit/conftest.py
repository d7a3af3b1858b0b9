"""Fixtures for the audit-trail suite: records, databases, a trail on a fresh schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.db import make_engine
from airlock.ledger.migrate import upgrade_to_head
from airlock.ledger.record import RequestRecord
from airlock.privacy.audit.chain import AuditTrail

PG_URL = os.environ.get("AIRLOCK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_record() -> Callable[..., RequestRecord]:
    counter = iter(range(1_000_000))

    def factory(**overrides: Any) -> RequestRecord:
        n = next(counter)
        values: dict[str, Any] = {
            "request_id": f"req-{n}",
            "timestamp": datetime(2025, 6, 1, 12, 0, n % 60, tzinfo=UTC),
            "principal_id": "key_a",
            "tenant": "acme",
            "key_kind": "api_key",
            "endpoint": "/v1/chat/completions",
            "requested_model": "auto",
            "served_model": "llama-3.1-8b-instruct",
            "deployment": "gpu-1",
            "provider": "openai-compatible",
            "region": "eu",
            "tier": "self-hosted",
            "route_reason": "auto:simple",
            "sensitive": n % 3 == 0,
            "entity_counts": {"US_SSN": 1} if n % 3 == 0 else {},
            "prompt_tokens": 100 + n,
            "completion_tokens": 50,
            "cost_usd": 0.0001,
            "baseline_cost_usd": 0.00075,
            "latency_ms": 120.5,
            "ttft_ms": 30.0,
            "status": 200,
            "finish_reason": "stop",
        }
        values.update(overrides)
        return RequestRecord(**values)

    return factory


@dataclass(frozen=True)
class Db:
    kind: str
    url: str
    schema: str | None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    if request.param == "sqlite":
        yield Db("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'airlock.db'}", None)
        return
    admin = make_engine(PG_URL)
    schema = "airlock_t_" + uuid.uuid4().hex[:12]
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, DBAPIError) as exc:
        await admin.dispose()
        message = f"PostgreSQL at {PG_URL} is unreachable ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield Db("postgres", PG_URL, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def engine(db: Db) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db.url, schema=db.schema)
    await upgrade_to_head(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def trail(engine: AsyncEngine, home: Path) -> AuditTrail:
    return AuditTrail.open(engine, home, checkpoint_every=5)
