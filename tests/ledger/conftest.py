"""Fixtures for the ledger suite: a record factory and databases (SQLite, PostgreSQL)."""

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

from airlock.ledger.db import make_engine
from airlock.ledger.record import RequestRecord

# The python-svc machine runs PostgreSQL here (trust auth) before every run.
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
            "timestamp": datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
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
            "sensitive": False,
            "entity_counts": {},
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "cost_usd": 0.0001,
            "baseline_cost_usd": 0.00075,
            "latency_ms": 120.5,
            "ttft_ms": 30.0,
            "status": 200,
            "finish_reason": "stop",
            "error_type": None,
            "stream": False,
        }
        values.update(overrides)
        return RequestRecord(**values)

    return factory


@dataclass(frozen=True)
class Db:
    kind: str
    url: str
    schema: str | None


async def pg_schema_or_skip() -> tuple[str, Callable[[], Any]]:
    """A fresh schema on the test PostgreSQL; FAIL (not skip) under CI if unreachable."""
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

    async def drop() -> None:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()

    return schema, drop


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    if request.param == "sqlite":
        yield Db("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'airlock.db'}", None)
        return
    schema, drop = await pg_schema_or_skip()
    try:
        yield Db("postgres", PG_URL, schema)
    finally:
        await drop()
