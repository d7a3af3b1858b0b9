"""Shared fixtures for access tests: anyio backend, a real local JWKS server, real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.idp import IdpServer, running_idp

# The python-svc machine runs Redis here before every run; override only to test failures.
REDIS_URL = os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def idp() -> Iterator[IdpServer]:
    with running_idp() as server:
        yield server


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping, no timing races)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _redis_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Redis at {REDIS_URL} is required in CI: {reason}")
    pytest.skip(f"Redis at {REDIS_URL} not reachable: {reason}")


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        _redis_unavailable(type(exc).__name__)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"airlock-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=prefix + "*")]
    if keys:
        await redis_client.delete(*keys)
