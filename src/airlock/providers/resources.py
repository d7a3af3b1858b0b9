"""Heavy objects shared by deployments (engines, connection pools): made once, closed last."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio

__all__ = ["Resources"]

T = TypeVar("T")


class Resources:
    """A keyed cache of shared objects; each is built on first use and closed at shutdown."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._stack = AsyncExitStack()
        self._objects: dict[tuple[Any, ...], object] = {}
        self._lock = anyio.Lock()
        # Blocking model work (embeddings) runs in threads; two at a time keeps both
        # cores busy without starving the event loop.
        self.thread_limiter = anyio.CapacityLimiter(2)

    async def shared(
        self,
        key: tuple[Any, ...],
        build: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        async with self._lock:
            if key not in self._objects:
                obj = await build()
                if close is not None:
                    self._stack.push_async_callback(close, obj)
                self._objects[key] = obj
            return cast(T, self._objects[key])

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._objects.clear()
