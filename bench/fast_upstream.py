"""A minimal, fast OpenAI-compatible upstream for the proxy-overhead benchmark.

    .venv/bin/python bench/fast_upstream.py --port 9100 [--api-key-env FAST_UPSTREAM_KEY]

Raw asyncio (uvloop when installed) HTTP/1.1 with keep-alive and pipelining, no framework:
the point is that the upstream costs as little CPU per request as possible, so that the
difference between calling it directly and calling it through airlock is airlock's cost.

* ``POST /v1/chat/completions``: a fixed small chat completion (JSON), or with
  ``"stream": true`` a short SSE stream (role chunk, seven content chunks, finish chunk,
  a usage chunk when ``stream_options.include_usage`` is true, ``[DONE]``), sent with
  chunked transfer encoding in one write.
* ``GET /v1/models`` and ``GET /health``: what airlock's health check needs.

The body is parsed (orjson) only for ``stream`` and ``stream_options``; the answer does
not depend on the prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Sequence
from typing import cast

import orjson

__all__ = ["CHAT_JSON", "UpstreamProtocol", "loop_factory", "main", "sse_body"]

MODEL = "fast-upstream"
CREATED = 1_700_000_000
PIECES = ("Hello", "!", " How", " can", " I", " help", "?")
USAGE = {"prompt_tokens": 12, "completion_tokens": len(PIECES), "total_tokens": 12 + len(PIECES)}

CHAT_JSON = orjson.dumps(
    {
        "id": "chatcmpl-fast",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(PIECES)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
)
MODELS_JSON = orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "x"}]}
)
_STATUS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found"}


def _chunk(delta: dict[str, str], finish: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-fast",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def sse_body(include_usage: bool) -> bytes:
    """The whole stream, already in chunked transfer encoding (one chunk per event)."""
    events: list[object] = [_chunk({"role": "assistant", "content": ""}, None)]
    events += [_chunk({"content": piece}, None) for piece in PIECES]
    events.append(_chunk({}, "stop"))
    if include_usage:
        events.append(
            {
                "id": "chatcmpl-fast",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": MODEL,
                "choices": [],
                "usage": USAGE,
            }
        )
    out = bytearray()
    for event in [*events, "[DONE]"]:
        data = event.encode() if isinstance(event, str) else orjson.dumps(event)
        frame = b"data: " + data + b"\n\n"
        out += b"%x\r\n%s\r\n" % (len(frame), frame)
    out += b"0\r\n\r\n"
    return bytes(out)


_SSE = {False: sse_body(False), True: sse_body(True)}


def _response(status: int, body: bytes, keep_alive: bool) -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        _STATUS[status],
        len(body),
    )
    if not keep_alive:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


def _stream_response(include_usage: bool, keep_alive: bool) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
    )
    if not keep_alive:
        head += b"connection: close\r\n"
    return head + b"\r\n" + _SSE[include_usage]


def _error(status: int, message: str, keep_alive: bool) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    return _response(status, body, keep_alive)


class UpstreamProtocol(asyncio.Protocol):
    """One connection: parse requests from the buffer as they complete, answer each."""

    def __init__(self, authorization: bytes | None) -> None:
        self._auth = authorization
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self._buf) < end + 4 + length:
                return
            body = bytes(self._buf[end + 4 : end + 4 + length])
            del self._buf[: end + 4 + length]
            keep_alive = headers.get(b"connection", b"").lower() != b"close"
            self._transport.write(self._answer(head[0], headers, body, keep_alive))
            if not keep_alive:
                self._transport.close()
                self._transport = None

    def _answer(
        self, request_line: bytes, headers: dict[bytes, bytes], body: bytes, keep_alive: bool
    ) -> bytes:
        method, _, rest = request_line.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method == b"GET" and path in (b"/v1/models", b"/health"):
            return _response(200, MODELS_JSON, keep_alive)
        if method != b"POST" or path != b"/v1/chat/completions":
            return _error(404, "unknown path", keep_alive)
        if self._auth is not None and headers.get(b"authorization") != self._auth:
            return _error(401, "bad api key", keep_alive)
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "body is not JSON", keep_alive)
        if not isinstance(req, dict):
            return _error(400, "body is not a JSON object", keep_alive)
        if req.get("stream"):
            options = req.get("stream_options") or {}
            return _stream_response(bool(options.get("include_usage")), keep_alive)
        return _response(200, CHAT_JSON, keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(host: str, port: int, authorization: bytes | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(authorization), host, port, backlog=1024
    )
    print(f"fast_upstream: listening on http://{host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--api-key-env", default=None, help="require 'Bearer $VAR' on chat requests"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    args = parser.parse_args(argv)
    authorization = None
    if args.api_key_env:
        authorization = b"Bearer " + os.environ[args.api_key_env].encode()
    try:
        with asyncio.Runner(loop_factory=loop_factory(not args.no_uvloop)) as runner:
            runner.run(serve(args.host, args.port, authorization))
    except KeyboardInterrupt:
        pass


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when wanted and installed (uvicorn[standard] brings it), else stdlib."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
