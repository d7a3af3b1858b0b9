"""The sharded client pool: sizes, least-busy choice, leases held for a whole call."""

from __future__ import annotations

import httpx
import pytest

from airlock.providers.client_pool import SHARD_SIZE, ClientPool


def _pool(max_connections: int) -> tuple[ClientPool, list[httpx.Limits]]:
    seen: list[httpx.Limits] = []

    def make(limits: httpx.Limits) -> httpx.AsyncClient:
        seen.append(limits)
        return httpx.AsyncClient()

    return ClientPool(max_connections, make), seen


@pytest.mark.parametrize(("total", "shards", "per"), [(1, 1, 1), (8, 1, 8), (9, 2, 5), (64, 8, 8)])
def test_shards_hold_at_most_the_configured_connections(total: int, shards: int, per: int) -> None:
    pool, limits = _pool(total)
    assert pool.size == shards
    assert {lim.max_connections for lim in limits} == {per}
    assert per <= SHARD_SIZE
    assert shards * per < total + shards


@pytest.mark.anyio
async def test_each_lease_goes_to_the_least_busy_shard() -> None:
    pool, _ = _pool(24)
    with pool.lease() as a, pool.lease() as b, pool.lease() as c:
        assert len({id(a), id(b), id(c)}) == 3
        with pool.lease() as d:
            assert d in (a, b, c)
    with pool.lease() as again, pool.lease() as other:
        assert again is not other  # released leases free their shard
    await pool.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
