"""JSON and server-sent-event responses, and OpenAI-shaped error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from airlock.errors import AirlockError

__all__ = ["SSE_DONE", "error_response", "json_response", "sse_event", "sse_response"]

SSE_DONE = b"data: [DONE]\n\n"


def json_response(
    body: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    payload = (
        body.model_dump_json().encode("utf-8")
        if isinstance(body, BaseModel)
        else orjson.dumps(body)
    )
    return Response(payload, status_code=status, media_type="application/json", headers=headers)


def error_response(exc: AirlockError) -> Response:
    return json_response(exc.to_body(), status=exc.status_code, headers=exc.headers or None)


def sse_event(body: BaseModel | dict[str, Any]) -> bytes:
    payload = (
        body.model_dump_json().encode("utf-8")
        if isinstance(body, BaseModel)
        else orjson.dumps(body)
    )
    return b"data: " + payload + b"\n\n"


def sse_response(events: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no", **headers},
    )
