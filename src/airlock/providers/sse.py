"""Reading server-sent events from an upstream response."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

__all__ = ["SseEvent", "iter_sse"]


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
