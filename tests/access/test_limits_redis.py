"""Redis rate limiter: real Redis TIME, key hygiene, several replicas, real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
import redis.asyncio as aioredis

from airlock.access.limits import RedisRateLimiter
from airlock.errors import RateLimitError, ServiceUnavailableError
from tests.access.conftest import REDIS_URL

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_burst_on_redis_time(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    # rpm=5 refills one request per 12 s, far longer than this burst takes.
    for _ in range(5):
        await limiter.acquire("p", 5, None, 0)
    with pytest.raises(RateLimitError) as info:
        await limiter.acquire("p", 5, None, 0)
    assert 1 <= int(info.value.headers["retry-after"]) <= 12


async def test_keys_have_ttls_and_the_documented_names(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    await limiter.acquire("key_123", 60, 6000, 600)
    req_key, tok_key = limiter.keys_for("key_123")
    assert req_key == f"{redis_prefix}rl:{{key_123}}:req"
    assert tok_key == f"{redis_prefix}rl:{{key_123}}:tok"
    # One request of 60 refills in 1 s; 600 tokens of 6000 in 6 s; plus 1 s of margin.
    assert 0 < await redis_client.pttl(req_key) <= 2000
    assert 5000 < await redis_client.pttl(tok_key) <= 7000
    keys = sorted([k.decode() async for k in redis_client.scan_iter(match=redis_prefix + "*")])
    assert keys == sorted([req_key, tok_key])


async def test_two_replicas_with_separate_connections_share_limits(
    redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    first = aioredis.Redis.from_url(REDIS_URL)
    second = aioredis.Redis.from_url(REDIS_URL)
    try:
        replicas = [
            RedisRateLimiter(first, prefix=redis_prefix),
            RedisRateLimiter(second, prefix=redis_prefix),
        ]

        async def attempt(i: int) -> bool:
            try:
                await replicas[i % 2].acquire("shared", 20, 20_000, 100)
            except RateLimitError:
                return False
            return True

        results = await asyncio.gather(*(attempt(i) for i in range(60)))
        assert sum(results) == 20
        assert sum(results[0::2]) > 0
        assert sum(results[1::2]) > 0
    finally:
        await first.aclose()
        await second.aclose()


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aioredis
    from airlock.access.limits import RedisRateLimiter
    from airlock.errors import RateLimitError

    async def main(url, prefix, attempts):
        client = aioredis.Redis.from_url(url)
        limiter = RedisRateLimiter(client, prefix=prefix)
        await client.rpush(prefix + "ready", 1)
        await client.blpop([prefix + "go"], timeout=30)
        admitted = 0
        for _ in range(attempts):
            try:
                await limiter.acquire("shared", 20, None, 0)
                admitted += 1
            except RateLimitError:
                pass
        print(admitted)
        await client.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_processes_share_one_redis(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, REDIS_URL, redis_prefix, "25"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for _ in range(2):  # both workers connected: start them together
            assert await redis_client.blpop([redis_prefix + "ready"], timeout=30) is not None
        await redis_client.rpush(redis_prefix + "go", 1, 1)
        outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    counts = [int(out.strip()) for out, _ in outputs]
    # 50 attempts across two processes, rpm=20: exactly 20 admitted in total.
    assert sum(counts) == 20


async def test_unreachable_redis_fails_closed_or_open() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=None)
    try:
        closed = RedisRateLimiter(client)
        with pytest.raises(ServiceUnavailableError) as info:
            await closed.acquire("p", 10, None, 0)
        assert info.value.status_code == 503
        opened = RedisRateLimiter(client, fail_open=True)
        reservation = await opened.acquire("p", 10, 100, 5)
        assert reservation.degraded is True
        await opened.reconcile(reservation, 50)  # nothing to correct, no error
    finally:
        await client.aclose()
