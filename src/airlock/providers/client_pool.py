"""Several small httpx clients instead of one large one, for busy upstreams.

httpcore's connection pool does work proportional to its size on every request
(it polls each idle connection), so one client with ``max_concurrency`` = 64
connections spends more time in its pool than on the call. Shards of up to
``SHARD_SIZE`` connections keep that cost flat; each call goes to the shard with
the fewest calls in flight, which also keeps connections warm and reused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

__all__ = ["SHARD_SIZE", "ClientPool"]

SHARD_SIZE = 8


class ClientPool:
    def __init__(
        self, max_connections: int, make: Callable[[httpx.Limits], httpx.AsyncClient]
    ) -> None:
        shards = max(1, math.ceil(max_connections / SHARD_SIZE))
        per = math.ceil(max_connections / shards)
        limits = httpx.Limits(
            max_connections=per, max_keepalive_connections=per, keepalive_expiry=30
        )
        self._clients = [make(limits) for _ in range(shards)]
        self._in_flight = [0] * shards

    @property
    def size(self) -> int:
        return len(self._clients)

    @contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        """The least busy client, counted as busy until the block ends (a stream
        holds its lease until it is closed)."""
        i = min(range(len(self._clients)), key=self._in_flight.__getitem__)
        self._in_flight[i] += 1
        try:
            yield self._clients[i]
        finally:
            self._in_flight[i] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
