"""Budgets: exact edges, periods, soft alerts, ledger seeding — memory and Redis stores."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis

from airlock.access.budgets import (
    BudgetGuard,
    MemorySpendStore,
    RedisSpendStore,
    SpendStore,
    periods_at,
    to_nanos,
)
from airlock.access.principal import Principal
from airlock.errors import InsufficientQuotaError, ServiceUnavailableError
from tests.access.conftest import REDIS_URL

pytestmark = pytest.mark.anyio

ALERT = "budget_soft_threshold"


class Now:
    def __init__(self) -> None:
        # Far in the future: Redis expires keys at period end + 1 day by its own clock.
        self.value = datetime(2099, 3, 31, 23, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def now() -> Now:
    return Now()


StoreFactory = Callable[[], SpendStore]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A factory: for Redis every call is a new store over the same keys (a replica)."""
    if request.param == "memory":
        memory = MemorySpendStore()
        return lambda: memory
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return lambda: RedisSpendStore(client, prefix=prefix)


def _principal(daily: float | None = None, monthly: float | None = None) -> Principal:
    return Principal(
        id="key_1",
        kind="api_key",
        tenant="acme",
        name="svc",
        budget_usd_daily=daily,
        budget_usd_monthly=monthly,
    )


def _alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == ALERT]


async def test_exact_edge_of_a_daily_budget(make_store: StoreFactory, now: Now) -> None:
    guard = BudgetGuard(make_store(), now=now)
    principal = _principal(daily=1.0)
    await guard.record(principal, 0.75)
    await guard.check(principal, 0.25)  # lands exactly on the budget: allowed
    with pytest.raises(InsufficientQuotaError) as info:
        await guard.check(principal, 0.250000001)  # one nano-dollar more: refused
    err = info.value
    assert err.status_code == 429
    assert err.to_body()["error"]["type"] == "insufficient_quota"
    assert err.code == "insufficient_quota"
    assert err.message.startswith("You exceeded your current quota")
    assert "daily budget of 1.00 USD" in err.message
    assert "resets at 2099-04-01T00:00:00Z" in err.message
    assert err.headers == {"x-should-retry": "false"}


async def test_sums_are_exact(make_store: StoreFactory, now: Now) -> None:
    guard = BudgetGuard(make_store(), now=now)
    principal = _principal(daily=1.0)
    for _ in range(10):
        await guard.record(principal, 0.1)  # 0.1 * 10 is not 1.0 in floats
    await guard.check(principal, 0.0)
    with pytest.raises(InsufficientQuotaError):
        await guard.check(principal, 1e-9)


async def test_day_and_month_periods_roll_over(make_store: StoreFactory, now: Now) -> None:
    guard = BudgetGuard(make_store(), now=now)
    principal = _principal(daily=2.0, monthly=3.0)
    await guard.record(principal, 2.0)  # 2099-03-31
    with pytest.raises(InsufficientQuotaError, match="daily"):
        await guard.check(principal, 0.01)

    now.value += timedelta(hours=2)  # 2099-04-01 01:00: new day and new month
    await guard.check(principal, 2.0)
    await guard.record(principal, 2.0)
    now.value += timedelta(days=1)  # 2099-04-02: new day, same month
    await guard.check(principal, 1.0)
    with pytest.raises(InsufficientQuotaError, match=r"monthly budget of 3\.00 USD") as info:
        await guard.check(principal, 1.01)
    assert "resets at 2099-05-01T00:00:00Z" in info.value.message


async def test_no_budget_means_no_refusal(make_store: StoreFactory, now: Now) -> None:
    guard = BudgetGuard(make_store(), now=now)
    principal = _principal()
    await guard.record(principal, 1_000_000.0)
    await guard.check(principal, 1_000_000.0)


async def test_zero_budget(make_store: StoreFactory, now: Now) -> None:
    guard = BudgetGuard(make_store(), now=now)
    principal = _principal(daily=0.0)
    await guard.check(principal, 0.0)  # free (self-hosted) requests still pass
    with pytest.raises(InsufficientQuotaError):
        await guard.check(principal, 1e-9)


async def test_overspent_budget_refuses_even_free_requests(
    make_store: StoreFactory, now: Now
) -> None:
    guard = BudgetGuard(make_store(), now=now)
    principal = _principal(monthly=1.0)
    await guard.record(principal, 1.5)  # a response costlier than estimated
    with pytest.raises(InsufficientQuotaError):
        await guard.check(principal, 0.0)


async def test_soft_alert_once_per_period(
    make_store: StoreFactory, now: Now, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="airlock.access.budgets")
    guard = BudgetGuard(make_store(), soft_threshold=0.8, now=now)
    principal = _principal(daily=10.0)
    await guard.record(principal, 7.99)
    assert _alerts(caplog) == []
    await guard.record(principal, 0.01)  # exactly 80 %
    await guard.record(principal, 1.0)
    await guard.check(principal, 0.5)
    alerts = _alerts(caplog)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.levelno == logging.WARNING
    assert alert.principal_id == "key_1"  # type: ignore[attr-defined]
    assert alert.period == "day"  # type: ignore[attr-defined]
    assert alert.period_start == "2099-03-31"  # type: ignore[attr-defined]
    assert alert.percent == 80.0  # type: ignore[attr-defined]
    assert alert.threshold_percent == 80.0  # type: ignore[attr-defined]

    now.value += timedelta(hours=2)  # a new day (and month): a new alert may fire
    await guard.record(principal, 9.0)
    assert len(_alerts(caplog)) == 2


async def test_alert_for_id_only_record_fires_at_next_check(
    make_store: StoreFactory, now: Now, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="airlock.access.budgets")
    guard = BudgetGuard(make_store(), soft_threshold=0.5, now=now)
    principal = _principal(monthly=4.0)
    await guard.record("key_1", 3.0)
    assert _alerts(caplog) == []
    await guard.check(principal, 0.1)
    alerts = _alerts(caplog)
    assert len(alerts) == 1
    assert alerts[0].period == "month"  # type: ignore[attr-defined]
    assert alerts[0].percent == 75.0  # type: ignore[attr-defined]


async def test_spend_is_seeded_from_the_ledger_once(make_store: StoreFactory, now: Now) -> None:
    calls: list[tuple[str, datetime]] = []

    async def load_spend(principal_id: str, period_start: datetime) -> float:
        calls.append((principal_id, period_start))
        return 4.5 if period_start.day == 31 else 20.0  # day so far; month so far

    guard = BudgetGuard(make_store(), load_spend=load_spend, now=now)
    principal = _principal(daily=5.0, monthly=25.0)
    await guard.check(principal, 0.5)
    with pytest.raises(InsufficientQuotaError, match="daily"):
        await guard.check(principal, 0.51)
    assert calls == [
        ("key_1", datetime(2099, 3, 31, tzinfo=UTC)),
        ("key_1", datetime(2099, 3, 1, tzinfo=UTC)),
    ]
    await guard.record(principal, 0.5)  # now exactly 5.0 / 25.0
    with pytest.raises(InsufficientQuotaError):
        await guard.check(principal, 1e-9)
    assert len(calls) == 2

    # A second replica (or a restart) finds the counters and does not seed again.
    other = BudgetGuard(make_store(), load_spend=load_spend, now=now)
    with pytest.raises(InsufficientQuotaError):
        await other.check(principal, 1e-9)
    assert len(calls) == 2


async def test_record_seeds_before_adding(make_store: StoreFactory, now: Now) -> None:
    async def load_spend(principal_id: str, period_start: datetime) -> float:
        return 4.5

    guard = BudgetGuard(make_store(), load_spend=load_spend, now=now)
    await guard.record("key_1", 0.5)
    with pytest.raises(InsufficientQuotaError, match=r"spent 5\.000000 USD"):
        await guard.check(_principal(daily=5.0), 1e-9)


async def test_bad_inputs(make_store: StoreFactory, now: Now) -> None:
    guard = BudgetGuard(make_store(), now=now)
    with pytest.raises(ValueError, match="negative"):
        await guard.check(_principal(daily=1.0), -0.01)
    with pytest.raises(ValueError, match="negative"):
        await guard.record("key_1", -0.01)
    for threshold in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="soft_threshold"):
            BudgetGuard(make_store(), soft_threshold=threshold)

    async def negative(principal_id: str, period_start: datetime) -> float:
        return -1.0

    seeded = BudgetGuard(make_store(), load_spend=negative, now=now)
    with pytest.raises(ValueError, match="negative"):
        await seeded.check(_principal(daily=1.0), 0.1)


def test_periods_are_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    day, month = periods_at(datetime(2099, 1, 1, 1, 30, tzinfo=plus_two))  # 2098-12-31 23:30Z
    assert day.label == "2098-12-31"
    assert day.start == datetime(2098, 12, 31, tzinfo=UTC)
    assert day.end == datetime(2099, 1, 1, tzinfo=UTC)
    assert month.label == "2098-12"
    assert month.end == datetime(2099, 1, 1, tzinfo=UTC)
    feb = periods_at(datetime(2028, 2, 29, 12, tzinfo=UTC))[1]
    assert (feb.start.day, feb.end.month, feb.end.day) == (1, 3, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        periods_at(datetime(2099, 1, 1))  # a naive value: refused


def test_to_nanos() -> None:
    assert to_nanos(1.0) == 1_000_000_000
    assert to_nanos(0.1) == 100_000_000
    assert to_nanos(1e-10) == 0


async def test_memory_store_forgets_past_periods(now: Now) -> None:
    store = MemorySpendStore()
    guard = BudgetGuard(store, now=now)
    await guard.record("a", 1.0)
    await guard.record("b", 1.0)
    assert len(store) == 4  # two principals × day and month
    now.value += timedelta(days=40)
    await guard.record("c", 1.0)
    assert len(store) == 2


@pytest.mark.redis
async def test_redis_keys_and_expiry(
    redis_client: aioredis.Redis, redis_prefix: str, now: Now
) -> None:
    store = RedisSpendStore(redis_client, prefix=redis_prefix)
    guard = BudgetGuard(store, now=now)
    await guard.record("key_1", 0.25)
    day_key = f"{redis_prefix}budget:{{key_1}}:day:2099-03-31"
    month_key = f"{redis_prefix}budget:{{key_1}}:month:2099-03"
    assert int(await redis_client.get(day_key)) == 250_000_000
    assert int(await redis_client.get(month_key)) == 250_000_000
    assert await redis_client.expiretime(day_key) == int(
        datetime(2099, 4, 2, tzinfo=UTC).timestamp()
    )
    assert await redis_client.expiretime(month_key) == int(
        datetime(2099, 4, 2, tzinfo=UTC).timestamp()
    )


@pytest.mark.redis
async def test_redis_replicas_count_every_cent_and_alert_once(
    redis_prefix: str, now: Now, caplog: pytest.LogCaptureFixture, redis_client: aioredis.Redis
) -> None:
    caplog.set_level(logging.WARNING, logger="airlock.access.budgets")
    first = aioredis.Redis.from_url(REDIS_URL)
    second = aioredis.Redis.from_url(REDIS_URL)
    try:
        guards = [
            BudgetGuard(RedisSpendStore(first, prefix=redis_prefix), now=now),
            BudgetGuard(RedisSpendStore(second, prefix=redis_prefix), now=now),
        ]
        principal = _principal(daily=1.0)
        await asyncio.gather(*(guards[i % 2].record(principal, 0.01) for i in range(100)))
        for guard in guards:
            with pytest.raises(InsufficientQuotaError, match=r"spent 1\.000000 USD"):
                await guard.check(principal, 1e-9)
        assert len(_alerts(caplog)) == 1
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.redis
async def test_unreachable_redis(now: Now, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="airlock.access.budgets")
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=None)
    try:
        store = RedisSpendStore(client)
        with pytest.raises(ServiceUnavailableError):
            await BudgetGuard(store, now=now).check(_principal(daily=1.0), 0.1)
        await BudgetGuard(store, now=now, fail_open=True).check(_principal(daily=1.0), 0.1)
        await BudgetGuard(store, now=now).record("key_1", 0.1)  # logged, not raised
        events = [r.getMessage() for r in caplog.records]
        assert "budget_spend_not_recorded" in events
    finally:
        await client.aclose()
