"""Spend that could not be recorded during a store outage comes back once it recovers.

The outage is real: during it the guard's store talks to a Redis port nobody listens
on (connection refused), so every failure goes through redis-py and the store's own
error handling. The ledger is a list of rows, written whatever Redis does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from airlock.access.budgets import (
    BudgetGuard,
    BudgetPeriod,
    MemorySpendStore,
    RedisSpendStore,
    periods_at,
)
from airlock.access.principal import Principal
from airlock.errors import InsufficientQuotaError, ServiceUnavailableError
from tests.access.conftest import FakeClock

pytestmark = pytest.mark.anyio

METHODS = frozenset({"spent", "seed", "add", "add_if_exists", "claim_alert"})
# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Now:
    def __init__(self) -> None:
        # Far in the future: Redis expires keys at period end + 1 day by its own clock.
        self.value = datetime(2099, 3, 31, 23, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value


class Ledger:
    """The usage ledger: its rows do not depend on Redis."""

    def __init__(self) -> None:
        self.rows: list[tuple[datetime, float]] = []
        self.queries = 0

    async def load_spend(self, principal_id: str, period_start: datetime) -> float:
        self.queries += 1
        return sum(cost for at, cost in self.rows if at >= period_start)


class FlakyStore:
    """A RedisSpendStore whose chosen methods go to a dead Redis during an outage."""

    def __init__(self, live: RedisSpendStore, dead: RedisSpendStore) -> None:
        self._live = live
        self._dead = dead
        self._down: frozenset[str] = frozenset()
        self.calls: Counter[str] = Counter()

    def outage(self, *methods: str) -> None:
        self._down = frozenset(methods) if methods else METHODS

    def recover(self) -> None:
        self._down = frozenset()

    def _pick(self, method: str) -> RedisSpendStore:
        self.calls[method] += 1
        return self._dead if method in self._down else self._live

    async def spent(self, principal_id: str, period: BudgetPeriod) -> int | None:
        return await self._pick("spent").spent(principal_id, period)

    async def seed(self, principal_id: str, period: BudgetPeriod, nanos: int) -> None:
        await self._pick("seed").seed(principal_id, period, nanos)

    async def add(self, principal_id: str, period: BudgetPeriod, nanos: int) -> int:
        return await self._pick("add").add(principal_id, period, nanos)

    async def add_if_exists(
        self, principal_id: str, period: BudgetPeriod, nanos: int
    ) -> int | None:
        return await self._pick("add_if_exists").add_if_exists(principal_id, period, nanos)

    async def claim_alert(self, principal_id: str, period: BudgetPeriod) -> bool:
        return await self._pick("claim_alert").claim_alert(principal_id, period)


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
async def flaky(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[FlakyStore]:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=None)
    try:
        yield FlakyStore(
            RedisSpendStore(redis_client, prefix=redis_prefix),
            RedisSpendStore(dead, prefix=redis_prefix),
        )
    finally:
        await dead.aclose()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="airlock.access.budgets")
    return caplog


def _principal(
    principal_id: str = "key_1", daily: float | None = None, monthly: float | None = None
) -> Principal:
    return Principal(
        id=principal_id,
        kind="api_key",
        tenant="acme",
        name="svc",
        budget_usd_daily=daily,
        budget_usd_monthly=monthly,
    )


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == event]


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


async def _counter(client: aioredis.Redis, prefix: str, key: str) -> int | None:
    raw = await client.get(f"{prefix}budget:{{key_1}}:{key}")
    return None if raw is None else int(raw)


async def _served(guard: BudgetGuard, ledger: Ledger, now: Now, cost: float) -> None:
    """What the meter does after a response: budget counters, then the ledger row."""
    await guard.record(_principal(daily=1.0, monthly=10.0), cost)
    ledger.rows.append((now.value, cost))


@pytest.mark.redis
async def test_spend_lost_in_an_outage_is_added_back_and_then_refuses(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger()
    guard = BudgetGuard(flaky, load_spend=ledger.load_spend, now=now, monotonic=clock)
    principal = _principal(daily=1.0, monthly=10.0)
    await _served(guard, ledger, now, 0.5)
    flaky.outage()
    await _served(guard, ledger, now, 0.4)  # logged, not raised, kept
    assert guard.pending == 2
    lost = _events(logs, "budget_spend_not_recorded")
    assert [_extras(r) for r in lost] == [
        {"principal_id": "key_1", "period": "day", "kept_for_retry": True},
        {"principal_id": "key_1", "period": "month", "kept_for_retry": True},
    ]

    flaky.recover()
    # Concurrent requests right after recovery: one re-apply, no double counting.
    await asyncio.gather(*(guard.check(principal, 0.1) for _ in range(10)))
    assert flaky.calls["add_if_exists"] == 2
    assert guard.pending == 0
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 900_000_000
    assert await _counter(redis_client, redis_prefix, "month:2099-03") == 900_000_000
    with pytest.raises(InsufficientQuotaError, match=r"spent 0\.900000 USD"):
        await guard.check(principal, 0.100000001)
    assert [_extras(r) for r in _events(logs, "budget_spend_reapplied")] == [
        {"principal_id": "key_1", "period": "day", "period_start": "2099-03-31", "amount_usd": 0.4},
        {"principal_id": "key_1", "period": "month", "period_start": "2099-03", "amount_usd": 0.4},
    ]


@pytest.mark.redis
async def test_a_counter_lost_with_redis_is_seeded_from_the_ledger_not_double_counted(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger()
    guard = BudgetGuard(flaky, load_spend=ledger.load_spend, now=now, monotonic=clock)
    await _served(guard, ledger, now, 0.5)
    assert ledger.queries == 2
    flaky.outage()
    await _served(guard, ledger, now, 0.4)
    # Redis comes back empty (restarted without persistence).
    await redis_client.delete(
        f"{redis_prefix}budget:{{key_1}}:day:2099-03-31",
        f"{redis_prefix}budget:{{key_1}}:month:2099-03",
    )
    flaky.recover()

    with pytest.raises(InsufficientQuotaError, match=r"spent 0\.900000 USD"):
        await guard.check(_principal(daily=1.0), 0.100000001)
    # Seeded again although this guard had seeded these counters before the outage.
    assert ledger.queries == 3
    assert guard.pending == 0
    await guard.check(_principal(monthly=10.0), 0.0)
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 900_000_000
    assert await _counter(redis_client, redis_prefix, "month:2099-03") == 900_000_000
    dropped = _events(logs, "budget_pending_spend_dropped")
    assert [(_extras(r)["period"], _extras(r)["reason"]) for r in dropped] == [
        ("day", "counter_missing"),
        ("month", "counter_missing"),
    ]
    assert _events(logs, "budget_spend_reapplied") == []


@pytest.mark.redis
async def test_a_counter_seeded_before_the_retry_drops_the_pending_spend(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
) -> None:
    ledger = Ledger()
    guard = BudgetGuard(
        flaky, load_spend=ledger.load_spend, fail_open=True, now=now, monotonic=clock
    )
    principal = _principal(daily=1.0)
    await _served(guard, ledger, now, 0.5)
    flaky.outage()
    await _served(guard, ledger, now, 0.4)
    await guard.check(principal, 0.0)  # a failed retry: the next waits for the interval
    assert flaky.calls["add_if_exists"] == 1
    await redis_client.delete(f"{redis_prefix}budget:{{key_1}}:day:2099-03-31")
    flaky.recover()

    await guard.check(principal, 0.0)  # no retry yet; the missing counter is seeded
    assert flaky.calls["add_if_exists"] == 1
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 900_000_000
    clock.advance(10)
    await guard.check(principal, 0.0)  # the month's pending spend is re-applied
    assert flaky.calls["add_if_exists"] == 2
    assert guard.pending == 0
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 900_000_000
    assert await _counter(redis_client, redis_prefix, "month:2099-03") == 900_000_000


@pytest.mark.redis
async def test_pending_spend_of_an_ended_period_is_dropped(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    now.value = datetime(2099, 3, 30, 23, 0, tzinfo=UTC)
    ledger = Ledger()
    guard = BudgetGuard(flaky, load_spend=ledger.load_spend, now=now, monotonic=clock)
    await _served(guard, ledger, now, 0.5)
    flaky.outage()
    await _served(guard, ledger, now, 0.4)
    now.value += timedelta(hours=2)  # 2099-03-31 01:00: a new day, the same month
    flaky.recover()

    await guard.check(_principal(daily=1.0, monthly=10.0), 0.0)
    assert guard.pending == 0
    assert await _counter(redis_client, redis_prefix, "day:2099-03-30") == 500_000_000
    assert await _counter(redis_client, redis_prefix, "month:2099-03") == 900_000_000
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 0
    [dropped] = _events(logs, "budget_pending_spend_dropped")
    assert _extras(dropped) == {
        "principal_id": "key_1",
        "period": "day",
        "period_start": "2099-03-30",
        "amount_usd": 0.4,
        "reason": "period_ended",
    }
    [reapplied] = _events(logs, "budget_spend_reapplied")
    assert _extras(reapplied)["period"] == "month"


@pytest.mark.redis
async def test_the_pending_map_is_bounded(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    # Without a ledger nothing seeds, so re-applied spend creates missing counters.
    guard = BudgetGuard(flaky, pending_limit=3, now=now, monotonic=clock)
    flaky.outage()
    for i in range(10):
        await guard.record(f"p{i}", 0.1)
    assert guard.pending == 3  # p0 day and month, p1 day
    await guard.record("p0", 0.2)  # summed into the keys it already has
    await guard.record("p1", 0.3)  # the day is kept, the month is given up
    assert guard.pending == 3
    [full] = _events(logs, "budget_pending_full")
    assert _extras(full) == {"pending_limit": 3}
    kept = [r.kept_for_retry for r in _events(logs, "budget_spend_not_recorded")]  # type: ignore[attr-defined]
    assert kept.count(True) == 3 + 2 + 1
    assert kept.count(False) == 17 + 1

    flaky.recover()
    clock.advance(10)  # past the failed retry made while the map filled
    await guard.check(_principal("other"), 0.0)  # any principal's request re-applies
    assert guard.pending == 0
    day, month = (f"{p.period}:{p.label}" for p in periods_at(now.value))

    async def counter(principal_id: str, period: str) -> int | None:
        raw = await redis_client.get(f"{redis_prefix}budget:{{{principal_id}}}:{period}")
        return None if raw is None else int(raw)

    assert await counter("p0", day) == await counter("p0", month) == 300_000_000
    assert await counter("p1", day) == 400_000_000
    assert await counter("p1", month) is None
    assert [await counter(f"p{i}", day) for i in range(2, 10)] == [None] * 8

    # The next outage that fills the map is logged again, once.
    flaky.outage()
    for i in range(5):
        await guard.record(f"q{i}", 0.1)
    assert guard.pending == 3
    assert len(_events(logs, "budget_pending_full")) == 2


@pytest.mark.redis
async def test_a_store_still_down_is_not_retried_on_every_request(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
) -> None:
    ledger = Ledger()
    guard = BudgetGuard(
        flaky,
        load_spend=ledger.load_spend,
        fail_open=True,
        retry_interval_s=5.0,
        now=now,
        monotonic=clock,
    )
    principal = _principal(daily=1.0)
    await _served(guard, ledger, now, 0.5)
    flaky.outage()
    await _served(guard, ledger, now, 0.4)
    for _ in range(20):
        await guard.check(principal, 0.01)
        await _served(guard, ledger, now, 0.0)
        clock.advance(0.2)  # 4 s in all
    assert flaky.calls["add_if_exists"] == 1  # the first retry; it stopped at its failure
    clock.advance(1.5)
    await guard.check(principal, 0.01)
    assert flaky.calls["add_if_exists"] == 2
    assert guard.pending == 2

    flaky.recover()
    clock.advance(6.0)
    await guard.check(principal, 0.01)
    assert flaky.calls["add_if_exists"] == 4
    assert guard.pending == 0
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 900_000_000
    clock.advance(60.0)
    await guard.check(principal, 0.01)
    assert flaky.calls["add_if_exists"] == 4  # nothing pending: nothing tried


@pytest.mark.redis
async def test_an_alert_failure_after_the_add_keeps_nothing_pending(
    flaky: FlakyStore,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    now: Now,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    guard = BudgetGuard(flaky, soft_threshold=0.5, now=now, monotonic=clock)
    principal = _principal(daily=1.0)
    flaky.outage("claim_alert")
    await guard.record(principal, 0.6)
    assert guard.pending == 0
    assert _events(logs, "budget_spend_not_recorded") == []
    assert len(_events(logs, "budget_alert_not_evaluated")) == 1
    assert await _counter(redis_client, redis_prefix, "day:2099-03-31") == 600_000_000
    flaky.recover()
    await guard.check(principal, 0.0)
    assert len(_events(logs, "budget_soft_threshold")) == 1


class GatedStore(MemorySpendStore):
    """A memory store that can refuse adds, and hold re-applies until released."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.reapplies = 0

    async def add(self, principal_id: str, period: BudgetPeriod, nanos: int) -> int:
        if self.down:
            raise ServiceUnavailableError("budget store is unavailable; try again later")
        return await super().add(principal_id, period, nanos)

    async def add_if_exists(
        self, principal_id: str, period: BudgetPeriod, nanos: int
    ) -> int | None:
        self.reapplies += 1
        self.started.set()
        await self.release.wait()
        return await super().add_if_exists(principal_id, period, nanos)


async def test_memory_store_never_has_pending_spend(now: Now, clock: FakeClock) -> None:
    store = GatedStore()
    store.release.set()
    ledger = Ledger()
    guard = BudgetGuard(store, load_spend=ledger.load_spend, now=now, monotonic=clock)
    principal = _principal(daily=1.0)
    for _ in range(5):
        await _served(guard, ledger, now, 0.2)
        clock.advance(10)
    assert guard.pending == 0
    assert store.reapplies == 0
    with pytest.raises(InsufficientQuotaError, match=r"spent 1\.000000 USD"):
        await guard.check(principal, 1e-9)


async def test_memory_add_if_exists(now: Now) -> None:
    store = MemorySpendStore()
    day, _ = periods_at(now.value)
    assert await store.add_if_exists("key_1", day, 5) is None
    assert await store.spent("key_1", day) is None
    await store.seed("key_1", day, 10)
    assert await store.add_if_exists("key_1", day, 5) == 15


async def test_a_caller_going_away_does_not_cancel_the_reapply(now: Now, clock: FakeClock) -> None:
    store = GatedStore()
    ledger = Ledger()
    guard = BudgetGuard(store, load_spend=ledger.load_spend, now=now, monotonic=clock)
    await _served(guard, ledger, now, 0.5)
    store.down = True
    await _served(guard, ledger, now, 0.4)
    assert guard.pending == 2
    store.down = False

    first = asyncio.create_task(guard.check(_principal(daily=1.0), 0.0))
    await asyncio.wait_for(store.started.wait(), 5)
    first.cancel()
    store.release.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    for _ in range(100):  # the re-apply goes on without its caller
        if guard.pending == 0:
            break
        await asyncio.sleep(0)
    assert guard.pending == 0
    assert store.reapplies == 2
    day, month = periods_at(now.value)
    assert await store.spent("key_1", day) == await store.spent("key_1", month) == 900_000_000


async def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="pending_limit"):
        BudgetGuard(MemorySpendStore(), pending_limit=-1)
    with pytest.raises(ValueError, match="retry_interval_s"):
        BudgetGuard(MemorySpendStore(), retry_interval_s=-0.1)
