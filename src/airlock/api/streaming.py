"""Relaying a provider's chunk stream to the client as server-sent events."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

import anyio
import orjson
from starlette.responses import StreamingResponse

from airlock.api.context import RequestContext
from airlock.api.responses import SSE_DONE, sse_event, sse_response
from airlock.errors import AirlockError, InternalServerError
from airlock.protocol.responses import ChatCompletionChunk, Completion

__all__ = ["TextChunkEncoder", "open_stream", "relay_stream"]

_log = logging.getLogger("airlock.stream")


C = TypeVar("C", ChatCompletionChunk, Completion)

_TEXT_SUFFIX = b'},"logprobs":null,"finish_reason":null}]}\n\n'


class TextChunkEncoder:
    """The SSE event of a plain text-delta chat chunk, without pydantic serialisation.

    Most events of a stream carry one choice with only ``delta.content``. Their bytes
    are a prefix that is fixed for the stream (id, created, model, choice index), the
    JSON string of the text, and a fixed suffix: exactly what ``model_dump_json`` writes.
    Every other chunk (role, tool calls, finish, usage, extra fields) gives None and goes
    through :func:`sse_event`.
    """

    __slots__ = ("_key", "_prefix")

    def __init__(self) -> None:
        self._key: tuple[str, int, str, int] | None = None
        self._prefix = b""

    def encode(self, chunk: object) -> bytes | None:
        if (
            type(chunk) is not ChatCompletionChunk
            or chunk.usage is not None
            or chunk.system_fingerprint is not None
            or chunk.__pydantic_extra__
            or len(chunk.choices) != 1
        ):
            return None
        choice = chunk.choices[0]
        delta = choice.delta
        text = delta.content
        if (
            text is None
            or choice.finish_reason is not None
            or choice.logprobs is not None
            or choice.__pydantic_extra__
            or delta.role is not None
            or delta.refusal is not None
            or delta.tool_calls is not None
            or delta.__pydantic_extra__
        ):
            return None
        key = (chunk.id, chunk.created, chunk.model, choice.index)
        if key != self._key:
            self._prefix = b"".join(
                (
                    b'data: {"id":',
                    orjson.dumps(chunk.id),
                    b',"object":"chat.completion.chunk","created":',
                    orjson.dumps(chunk.created),
                    b',"model":',
                    orjson.dumps(chunk.model),
                    b',"choices":[{"index":',
                    orjson.dumps(choice.index),
                    b',"delta":{"content":',
                )
            )
            self._key = key
        try:
            body = orjson.dumps(text)
        except orjson.JSONEncodeError:
            return None  # a lone surrogate: leave it to pydantic's rules
        return self._prefix + body + _TEXT_SUFFIX


async def open_stream(stream: AsyncGenerator[C, None]) -> tuple[C | None, AsyncGenerator[C, None]]:
    """Pull the first chunk before anything is sent to the client.

    Errors raised before generation (bad parameters, context length, an upstream that
    refuses or is down) then become a plain 4xx/5xx, and may still be retried.
    """
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        return None, stream
    except BaseException:
        await _close(stream)
        raise
    return first, stream


def relay_stream(
    first: C | None,
    stream: AsyncGenerator[C, None],
    ctx: RequestContext,
    *,
    public_model: str,
    include_usage: bool,
) -> StreamingResponse:
    """Send ``first`` and the rest of ``stream`` as server-sent events."""
    ctx.first_token_at = time.perf_counter()
    encoder = TextChunkEncoder()

    def accept(chunk: C) -> bytes | None:
        chunk.model = public_model
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                ctx.finish_reason = choice.finish_reason
        if chunk.usage is not None:
            ctx.prompt_tokens = chunk.usage.prompt_tokens
            ctx.completion_tokens = chunk.usage.completion_tokens
            if not chunk.choices and not include_usage:
                return None
        return encoder.encode(chunk) or sse_event(chunk)

    async def events() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                out = accept(first)
                if out is not None:
                    yield out
            async for chunk in stream:
                out = accept(chunk)
                if out is not None:
                    yield out
            yield SSE_DONE
        except AirlockError as exc:
            # Headers are gone; OpenAI reports mid-stream failures as an error event.
            ctx.error_type = exc.error_type
            yield sse_event(exc.to_body())
        except Exception as exc:  # noqa: BLE001 - reported to the client, type logged
            ctx.error_type = "internal_error"
            _log.error(
                "stream_failed",
                extra={"request_id": ctx.request_id, "exc_type": type(exc).__name__},
            )
            yield sse_event(
                InternalServerError(
                    f"The server had an error while streaming (request id {ctx.request_id})."
                ).to_body()
            )
        finally:
            if ctx.finish_reason is None and ctx.error_type is None:
                ctx.error_type = "client_disconnected"
            await _close(stream)

    return sse_response(events(), headers={})


async def _close(stream: AsyncGenerator[object, None]) -> None:
    # Shielded: on a client disconnect we are being cancelled, and the upstream or
    # engine must still be told to stop.
    with anyio.CancelScope(shield=True):
        await stream.aclose()
