"""Reading server-sent events from an upstream response."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import anyio
import httpx

__all__ = ["SseEvent", "drain", "iter_sse"]


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None
    data: str


async def iter_sse(response: httpx.Response) -> AsyncGenerator[SseEvent, None]:
    """Yield events as they arrive; multi-line ``data:`` fields are joined with newlines."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield SseEvent(event, "\n".join(data))


async def drain(events: AsyncGenerator[SseEvent, None], end: float) -> None:
    """Read what follows the stream's last event (the end of the body, briefly, never
    past ``end``) so the connection goes back to the pool and is reused."""
    with anyio.move_on_after(min(1.0, max(0.0, end - anyio.current_time()))):
        async for _ in events:
            pass
