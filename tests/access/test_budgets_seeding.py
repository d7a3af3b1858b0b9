"""Budget counters are seeded from the ledger once, also under concurrent requests.

Found by the load test (bench/load_test.py): on a cold counter every concurrent
request of a principal ran the ledger's spend query at the same moment, hundreds of
SUM queries that exhausted the database pool and stalled responses for seconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from airlock.access.budgets import BudgetGuard, MemorySpendStore, periods_at, to_nanos
from airlock.access.principal import Principal
from airlock.errors import ServiceUnavailableError

pytestmark = pytest.mark.anyio

NOW = datetime(2099, 3, 31, 23, 0, tzinfo=UTC)


def _principal() -> Principal:
    return Principal(id="key_1", kind="api_key", tenant="acme", name="svc", budget_usd_daily=100.0)


async def test_concurrent_requests_share_one_seeding_per_counter() -> None:
    calls: list[datetime] = []

    async def load_spend(principal_id: str, period_start: datetime) -> float:
        calls.append(period_start)
        await asyncio.sleep(0.05)  # a slow ledger query: every request overlaps it
        return 1.0

    store = MemorySpendStore()
    guard = BudgetGuard(store, load_spend=load_spend, now=lambda: NOW)
    await asyncio.gather(*(guard.record(_principal(), 0.5) for _ in range(40)))
    assert sorted(calls) == [datetime(2099, 3, 1, tzinfo=UTC), datetime(2099, 3, 31, tzinfo=UTC)]
    day, month = periods_at(NOW)
    assert await store.spent("key_1", day) == to_nanos(1.0 + 40 * 0.5)
    assert await store.spent("key_1", month) == to_nanos(1.0 + 40 * 0.5)


async def test_a_failed_seeding_fails_its_waiters_and_is_retried() -> None:
    attempts = 0

    async def load_spend(principal_id: str, period_start: datetime) -> float:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.02)
        if attempts == 1:
            raise ServiceUnavailableError("ledger down")
        return 0.0

    guard = BudgetGuard(MemorySpendStore(), load_spend=load_spend, now=lambda: NOW)
    results = await asyncio.gather(
        *(guard.check(_principal(), 0.01) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ServiceUnavailableError) for r in results)
    assert attempts == 1
    await guard.check(_principal(), 0.01)  # the next request seeds afresh
    assert attempts == 2


async def test_a_caller_going_away_does_not_cancel_the_seeding() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def load_spend(principal_id: str, period_start: datetime) -> float:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return 2.0

    guard = BudgetGuard(MemorySpendStore(), load_spend=load_spend, now=lambda: NOW)
    first = asyncio.create_task(guard.check(_principal(), 0.01))
    await started.wait()
    second = asyncio.create_task(guard.check(_principal(), 0.01))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    await second
    assert first.cancelled()
    assert calls == 1
