"""Token-bucket rate limits: the same edge cases against the memory and Redis backends.

Both backends run on a hand-moved clock here (Redis gets it as an override of TIME),
so every count is exact; the Redis TIME path is tested in test_limits_redis.py.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from airlock.access.limits import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    Reservation,
    TokensRateLimitError,
    format_reset,
)
from airlock.errors import RateLimitError
from tests.access.conftest import FakeClock

pytestmark = pytest.mark.anyio

LimiterFactory = Callable[[], RateLimiter]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_limiter(request: pytest.FixtureRequest, clock: FakeClock) -> LimiterFactory:
    """A factory, so a test can build two limiters sharing one store (Redis) or not."""
    if request.param == "memory":
        memory = MemoryRateLimiter(clock=clock)
        return lambda: memory
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return lambda: RedisRateLimiter(
        client, prefix=prefix, clock_us=lambda: round(clock.now * 1_000_000)
    )


async def _refused(limiter: RateLimiter, *args: int | None, pid: str = "p") -> RateLimitError:
    with pytest.raises(RateLimitError) as info:
        await limiter.acquire(pid, *args)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("rpm", [1, 5, 60, 1000])
async def test_exactly_rpm_requests_in_a_burst(make_limiter: LimiterFactory, rpm: int) -> None:
    limiter = make_limiter()
    for _ in range(rpm):
        await limiter.acquire("p", rpm, None, 0)
    err = await _refused(limiter, rpm, None, 0)
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.to_body()["error"]["type"] == "requests"
    assert err.message.startswith(
        f"Rate limit reached for requests per minute (RPM): Limit {rpm}, Used {rpm}, Requested 1."
    )
    # The bucket is empty: the next token arrives after 60/rpm seconds.
    assert err.headers["retry-after"] == str(max(1, math.ceil(60 / rpm)))
    assert int(err.headers["retry-after-ms"]) == math.ceil(60_000 / rpm)
    assert err.headers["x-ratelimit-remaining-requests"] == "0"


async def test_refill_is_limit_over_60_per_second(
    make_limiter: LimiterFactory, clock: FakeClock
) -> None:
    limiter = make_limiter()
    for _ in range(60):
        await limiter.acquire("p", 60, None, 0)
    clock.advance(0.999)
    err = await _refused(limiter, 60, None, 0)
    assert err.headers["retry-after"] == "1"
    assert err.headers["retry-after-ms"] == "1"
    clock.advance(0.001)
    await limiter.acquire("p", 60, None, 0)
    await _refused(limiter, 60, None, 0)
    # A long idle period refills to capacity, never beyond.
    clock.advance(3600)
    for _ in range(60):
        await limiter.acquire("p", 60, None, 0)
    await _refused(limiter, 60, None, 0)


async def test_steady_rate_after_burst(make_limiter: LimiterFactory, clock: FakeClock) -> None:
    limiter = make_limiter()
    rpm = 12  # one request every 5 s
    for _ in range(rpm):
        await limiter.acquire("p", rpm, None, 0)
    admitted = 0
    for _ in range(60):  # one attempt per second for a minute
        clock.advance(1)
        try:
            await limiter.acquire("p", rpm, None, 0)
            admitted += 1
        except RateLimitError:
            pass
    assert admitted == rpm


async def test_tokens_per_minute(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    await limiter.acquire("p", None, 1000, 400)
    await limiter.acquire("p", None, 1000, 400)
    err = await _refused(limiter, None, 1000, 400)
    assert isinstance(err, TokensRateLimitError)
    assert err.to_body()["error"]["type"] == "tokens"
    assert err.message.startswith(
        "Rate limit reached for tokens per minute (TPM): Limit 1000, Used 800, Requested 400."
    )
    # 200 tokens missing at 1000/60 per second: 12 s.
    assert err.headers["retry-after"] == "12"
    assert err.headers["x-ratelimit-remaining-tokens"] == "200"
    # Exactly what is left still fits.
    await limiter.acquire("p", None, 1000, 200)
    await _refused(limiter, None, 1000, 1)


async def test_request_larger_than_tpm_is_refused_without_retry(
    make_limiter: LimiterFactory,
) -> None:
    limiter = make_limiter()
    err = await _refused(limiter, None, 1000, 1001)
    assert isinstance(err, TokensRateLimitError)
    assert "Request too large" in err.message
    assert "retry-after" not in err.headers
    assert err.headers["x-should-retry"] == "false"
    # Nothing was taken.
    await limiter.acquire("p", None, 1000, 1000)


async def test_refused_request_takes_from_neither_bucket(
    make_limiter: LimiterFactory, clock: FakeClock
) -> None:
    limiter = make_limiter()
    first = await limiter.acquire("p", 10, 100, 60)
    assert first.remaining_requests == 9
    assert first.remaining_tokens == 40
    err = await _refused(limiter, 10, 100, 60)
    assert isinstance(err, TokensRateLimitError)
    second = await limiter.acquire("p", 10, 100, 40)
    assert second.remaining_requests == 8  # the refused request cost no request token
    assert second.remaining_tokens == 0


async def test_retry_after_covers_the_slower_bucket(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    await limiter.acquire("p", 1, 600, 600)
    # Requests: 60 s to the next; tokens: 600 missing at 10/s, also 60 s; tie → requests.
    err = await _refused(limiter, 1, 600, 600)
    assert err.headers["retry-after"] == "60"
    assert not isinstance(err, TokensRateLimitError)
    # Wanting fewer tokens shortens the token wait, but the request bucket still says 60.
    err = await _refused(limiter, 1, 600, 10)
    assert err.headers["retry-after"] == "60"


async def test_reconcile_refunds_and_charges(
    make_limiter: LimiterFactory, clock: FakeClock
) -> None:
    limiter = make_limiter()
    reservation = await limiter.acquire("p", None, 1000, 500)
    await limiter.reconcile(reservation, 100)  # 400 back
    await limiter.acquire("p", None, 1000, 900)
    await _refused(limiter, None, 1000, 1)

    clock.advance(60)  # full again
    reservation = await limiter.acquire("p", None, 1000, 100)
    await limiter.reconcile(reservation, 1600)  # 1500 more than estimated: 600 in debt
    err = await _refused(limiter, None, 1000, 0)
    assert err.headers["retry-after"] == "36"  # 600 tokens at 1000/60 per second
    clock.advance(36)
    await limiter.acquire("p", None, 1000, 0)
    await _refused(limiter, None, 1000, 1)


async def test_refund_never_exceeds_capacity(
    make_limiter: LimiterFactory, clock: FakeClock
) -> None:
    limiter = make_limiter()
    reservation = await limiter.acquire("p", None, 100, 50)
    clock.advance(60)
    await limiter.reconcile(reservation, 0)
    await limiter.acquire("p", None, 100, 100)
    await _refused(limiter, None, 100, 1)


async def test_reconcile_misuse(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    reservation = await limiter.acquire("p", 10, 100, 10)
    with pytest.raises(ValueError, match="negative"):
        await limiter.reconcile(reservation, -1)
    await limiter.reconcile(reservation, 10)
    with pytest.raises(RuntimeError, match="already reconciled"):
        await limiter.reconcile(reservation, 10)


@pytest.mark.parametrize(
    ("rpm", "tpm", "tokens", "message"),
    [(0, None, 0, "rpm"), (-1, None, 0, "rpm"), (None, 0, 0, "tpm"), (None, None, -1, "negative")],
)
async def test_invalid_arguments(
    make_limiter: LimiterFactory, rpm: int | None, tpm: int | None, tokens: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await make_limiter().acquire("p", rpm, tpm, tokens)


async def test_no_limits_means_no_refusals(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    for _ in range(200):
        reservation = await limiter.acquire("p", None, None, 10_000)
    assert reservation.headers() == {}
    await limiter.reconcile(reservation, 50_000)


async def test_principals_are_isolated(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    for _ in range(3):
        await limiter.acquire("a", 3, None, 0)
    await _refused(limiter, 3, None, 0, pid="a")
    await limiter.acquire("b", 3, None, 0)
    # Ids that only differ in characters a key format might mangle stay separate.
    await limiter.acquire("a:req", 3, None, 0)
    await limiter.acquire("a}", 3, None, 0)


async def test_lowering_a_limit_caps_the_bucket(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    await limiter.acquire("p", 100, None, 0)  # 99 left at rpm=100
    for _ in range(5):
        await limiter.acquire("p", 5, None, 0)  # capped to 5 at rpm=5
    await _refused(limiter, 5, None, 0)


async def test_reservation_headers(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    reservation = await limiter.acquire("p", 60, 6000, 1500)
    assert reservation.headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "4500",
        "x-ratelimit-reset-tokens": "15s",
    }


async def test_concurrent_acquires_admit_exactly_the_limit(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()

    async def attempt() -> bool:
        try:
            await limiter.acquire("p", 20, 2000, 50)
        except RateLimitError:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(60)))
    assert sum(results) == 20


def test_format_reset() -> None:
    assert format_reset(0) == "0ms"
    assert format_reset(0.0201) == "21ms"
    assert format_reset(1) == "1s"
    assert format_reset(1.5) == "1.5s"
    assert format_reset(59.9999) == "1m0s"
    assert format_reset(59.99) == "59.99s"
    assert format_reset(60) == "1m0s"
    assert format_reset(360.2) == "6m1s"
    assert format_reset(-3) == "0ms"


async def test_memory_limiter_prunes_idle_buckets(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    for i in range(100):
        await limiter.acquire(f"idle-{i}", 10, None, 0)
    assert len(limiter) == 100
    clock.advance(7)  # 1 request at rpm=10 refills in 6 s: these buckets are full again
    for _ in range(4096):
        reservation: Reservation = await limiter.acquire("busy", None, 10**9, 1)
    assert reservation.remaining_tokens is not None
    assert len(limiter) == 1
