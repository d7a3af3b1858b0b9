"""A loopback stand-in for Anthropic's Messages API, as strict as the real one.

It speaks the real wire format: ``POST /v1/messages`` with ``x-api-key`` and
``anthropic-version`` headers, request validation that refuses what Anthropic refuses
(a ``system`` role inside ``messages``, consecutive same-role turns, empty text blocks,
``tool_use`` without a ``tool_result`` right after, unknown fields…), replies and SSE
event sequences shaped like Anthropic's (``message_start``, ``content_block_start``,
``ping``, ``content_block_delta`` with ``text_delta`` / ``input_json_delta`` fragments,
``content_block_stop``, ``message_delta``, ``message_stop``, ``event: error``) and
Anthropic's error bodies and statuses. Tests queue scripted replies with ``push``; with
none queued it answers sensibly (forced tools are called with schema-shaped input).
Its error messages quote the request, as real upstream errors may: airlock must not.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from airlock.config import DeploymentConfig, TimeoutConfig
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.parsing import parse_request
from airlock.protocol.responses import ChatCompletion, ChatCompletionChunk
from airlock.providers.anthropic import AnthropicProvider
from airlock.providers.base import CallContext
from tests.support.server import free_port

__all__ = [
    "API_KEY",
    "CTX",
    "KEY_ENV",
    "UPSTREAM_MODEL",
    "CutOff",
    "Error",
    "FakeAnthropic",
    "Stall",
    "StreamError",
    "Text",
    "ToolUse",
    "chat",
    "deployment",
    "open_provider",
    "request",
    "stream",
]

API_KEY = "sk-ant-fake-test-key"
_TOP_LEVEL = {
    "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p",
    "top_k", "stream", "tools", "tool_choice", "metadata", "thinking", "service_tier",
}  # fmt: skip
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_MEDIA = {"image/jpeg", "image/png", "image/gif", "image/webp"}


# --- scripted replies --------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolUse:
    calls: list[tuple[str, dict[str, Any]]]
    text: str = ""


@dataclass(frozen=True)
class Error:
    status: int
    type: str
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class StreamError:
    """HTTP 200, then ``event: error`` (after ``after_text`` was streamed, if any)."""

    type: str
    message: str = "Overloaded"
    after_text: str = ""


@dataclass(frozen=True)
class Stall:
    """Wait ``seconds`` before answering; with ``mid_stream`` after the first text delta
    (or, with ``before_text``, right after ``message_start``), with ``pings`` sending a
    ping every 50 ms meanwhile."""

    seconds: float
    mid_stream: bool = False
    pings: bool = False
    before_text: bool = False


@dataclass(frozen=True)
class CutOff:
    """Stream some text, then close the connection without ``message_stop``."""

    text: str = "partial answer"


Reply = Text | ToolUse | Error | StreamError | Stall | CutOff


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]


# --- validation (mirrors Anthropic's 400s) -----------------------------------------------


class Invalid(Exception):
    pass


def _check_blocks(i: int, role: str, content: Any, final_assistant: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content and not final_assistant:
            raise Invalid(f"messages.{i}: all messages must have non-empty content")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or (not content and not final_assistant):
        raise Invalid(f"messages.{i}: all messages must have non-empty content")
    for j, block in enumerate(content):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise Invalid(f"{where}.text: text content blocks must be non-empty")
            if not block["text"].strip():
                raise Invalid(f"{where}.text: text content blocks must contain non-whitespace text")
        elif kind == "image":
            src = block.get("source") or {}
            if src.get("type") == "base64":
                if src.get("media_type") not in _MEDIA or not src.get("data"):
                    raise Invalid(f"{where}.source: invalid image source")
            elif src.get("type") != "url" or not str(src.get("url", "")).startswith("http"):
                raise Invalid(f"{where}.source: invalid image source")
            if role != "user":
                raise Invalid(f"{where}: images are only allowed in user messages")
        elif kind == "tool_use":
            if role != "assistant":
                raise Invalid(f"{where}: tool_use blocks are only allowed in assistant messages")
            if not _TOOL_ID.match(str(block.get("id", ""))):
                raise Invalid(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(block.get("input"), dict):
                raise Invalid(f"{where}.input: Input should be a valid dictionary")
        elif kind == "tool_result":
            if role != "user":
                raise Invalid(f"{where}: tool_result blocks are only allowed in user messages")
            inner = block.get("content")
            if inner is not None and not isinstance(inner, str | list):
                raise Invalid(f"{where}.content: Input should be a valid string or list")
        else:
            raise Invalid(f"{where}.type: Input tag '{kind}' found does not match any tag")
    return content


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("body: Input should be an object")
    for key in body:
        if key not in _TOP_LEVEL:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise Invalid(f"{key}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    for key in ("temperature", "top_p"):
        if key in body and not 0 <= body[key] <= 1:
            raise Invalid(f"{key}: Input should be less than or equal to 1")
    if "temperature" in body and "top_p" in body:
        # As recent Claude models do.
        raise Invalid("`temperature` and `top_p` cannot both be specified for this model.")
    for seq in body.get("stop_sequences", []):
        if not isinstance(seq, str) or not seq.strip():
            raise Invalid("stop_sequences: each stop sequence must contain non-whitespace")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        for j, block in enumerate(system):
            if block.get("type") != "text" or not block.get("text"):
                raise Invalid(f"system.{j}.text: text content blocks must be non-empty")
    tools = body.get("tools")
    names: set[str] = set()
    for k, tool in enumerate(tools or []):
        for key in tool:
            if key not in {"name", "description", "input_schema", "cache_control", "type"}:
                raise Invalid(f"tools.{k}.{key}: Extra inputs are not permitted")
        if not _TOOL_NAME.match(str(tool.get("name", ""))):
            raise Invalid(f"tools.{k}.name: String should match pattern")
        if tool["name"] in names:
            raise Invalid("tools: Tool names must be unique.")
        names.add(tool["name"])
        if (tool.get("input_schema") or {}).get("type") != "object":
            raise Invalid(f"tools.{k}.input_schema.type: Input should be 'object'")
    choice = body.get("tool_choice")
    if choice is not None:
        if not tools:
            raise Invalid("tool_choice: tool_choice may only be specified while providing tools")
        if choice.get("type") not in {"auto", "any", "tool", "none"}:
            raise Invalid("tool_choice.type: Input tag found does not match any tag")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise Invalid("tool_choice.name: Tool not found in tools")
        if choice["type"] == "none" and "disable_parallel_tool_use" in choice:
            raise Invalid("tool_choice.none.disable_parallel_tool_use: Extra inputs")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: List should have at least 1 item")
    uses_tools = False
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(
                f"messages.{i}.role: Input should be 'user' or 'assistant' (got {role!r}, "
                f"content {msg.get('content')!r})"
            )
        if i and messages[i - 1]["role"] == role:
            raise Invalid(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row'
            )
        final = i == len(messages) - 1 and role == "assistant"
        blocks = _check_blocks(i, role, msg.get("content"), final)
        tail = blocks[-1] if final and blocks else {}
        if tail.get("type") == "text" and tail["text"] != tail["text"].rstrip():
            raise Invalid("messages: final assistant content cannot end with trailing whitespace")
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        uses_tools = uses_tools or bool(uses) or any(b["type"] == "tool_result" for b in blocks)
        if uses:
            nxt = messages[i + 1]["content"] if i + 1 < len(messages) else []
            nxt = nxt if isinstance(nxt, list) else []
            leading: list[str] = []
            for b in nxt:
                if b.get("type") != "tool_result":
                    break
                leading.append(b.get("tool_use_id"))
            missing = [u for u in uses if u not in leading]
            if missing:
                raise Invalid(
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` "
                    f"blocks immediately after: {', '.join(missing)}. Each `tool_use` block "
                    "must have a corresponding `tool_result` block in the next message."
                )
        for j, b in enumerate(blocks):
            if b.get("type") == "tool_result":
                prev = messages[i - 1]["content"] if i else []
                prev_ids = {p.get("id") for p in prev if isinstance(p, dict)}
                if b.get("tool_use_id") not in prev_ids:
                    raise Invalid(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        "`tool_result` blocks. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
    if uses_tools and not tools:
        raise Invalid(
            "Requests which include `tool_use` or `tool_result` blocks must define tools."
        )


# --- replies -----------------------------------------------------------------------------


def _sample(schema: dict[str, Any]) -> Any:
    """A value of the schema's shape (the fake's idea of a model filling in a tool)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _sample(v) for k, v in props.items()}
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True}.get(
        kind, [_sample(schema.get("items", {"type": "string"}))] if kind == "array" else None
    )


def _words(text: str) -> int:
    return len(text.split())


def _input_tokens(body: dict[str, Any]) -> int:
    return max(1, _words(orjson.dumps(body.get("messages")).decode().replace('"', " ")))


def _default_reply(body: dict[str, Any]) -> Reply:
    tools = {t["name"]: t for t in body.get("tools", [])}
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        return ToolUse([(choice["name"], _sample(tools[choice["name"]]["input_schema"]))])
    if choice.get("type") == "any":
        name = next(iter(tools))
        return ToolUse([(name, _sample(tools[name]["input_schema"]))])
    return Text("Hello from the fake Claude. How can I help you today?")


def _content(
    reply: Text | ToolUse, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], str, str | None]:
    """Content blocks, stop_reason and stop_sequence, honouring stop_sequences and max_tokens."""
    if isinstance(reply, ToolUse):
        blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        for name, args in reply.calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{secrets.token_hex(8)}",
                    "name": name,
                    "input": args,
                }
            )
        return blocks, "tool_use", None
    text, stop_reason, stop_seq = reply.text, "end_turn", None
    for seq in body.get("stop_sequences", []):
        if seq in text:
            text, stop_reason, stop_seq = text.split(seq, 1)[0], "stop_sequence", seq
    words = text.split(" ")
    if len(words) > body["max_tokens"]:
        text, stop_reason, stop_seq = " ".join(words[: body["max_tokens"]]), "max_tokens", None
    return [{"type": "text", "text": text}], stop_reason, stop_seq


def _output_tokens(blocks: list[dict[str, Any]]) -> int:
    n = 0
    for b in blocks:
        n += _words(b["text"]) if b["type"] == "text" else len(orjson.dumps(b["input"])) // 4 + 1
    return n


def _error_body(
    err_type: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": err_type, "message": message}
    if details:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": f"req_{secrets.token_hex(12)}"}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return _sse(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return _sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


_EMPTY_TEXT = {"type": "text", "text": ""}


def _fragments(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


class FakeAnthropic:
    """Run with ``with FakeAnthropic() as fake:``; ``fake.base_url`` is the upstream URL."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.model_list_calls = 0
        self._script: deque[Reply] = deque()
        self.port = free_port()
        app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()
        self.model_list_calls = 0

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1].body

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("fake Anthropic server did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # --- endpoints -------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        self.model_list_calls += 1
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse(_error_body("authentication_error", "invalid x-api-key"), 401)
        return JSONResponse({"data": [{"type": "model", "id": "claude-fake-1"}], "has_more": False})

    async def _messages(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return JSONResponse(_error_body("invalid_request_error", "invalid JSON"), 400)
        self.requests.append(Recorded(dict(request.headers), body))
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse(_error_body("authentication_error", "invalid x-api-key"), 401)
        if request.headers.get("anthropic-version") != "2023-06-01":
            return JSONResponse(
                _error_body("invalid_request_error", "anthropic-version: header is required"), 400
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse(_error_body("invalid_request_error", "content-type"), 400)
        try:
            validate(body)
        except Invalid as exc:
            return JSONResponse(_error_body("invalid_request_error", str(exc)), 400)
        reply = self._script.popleft() if self._script else _default_reply(body)
        if isinstance(reply, Stall) and not reply.mid_stream:
            await asyncio.sleep(reply.seconds)
            reply = self._script.popleft() if self._script else _default_reply(body)
        if isinstance(reply, Error):
            return JSONResponse(
                _error_body(reply.type, reply.message, reply.details),
                reply.status,
                headers={"request-id": "req_fake", **reply.headers},
            )
        if body.get("stream"):
            return StreamingResponse(
                self._stream(reply, body),
                media_type="text/event-stream",
                headers={"request-id": "req_fake", "cache-control": "no-cache"},
            )
        if not isinstance(reply, Text | ToolUse):
            raise AssertionError(f"{type(reply).__name__} only makes sense for a stream")
        blocks, stop_reason, stop_seq = _content(reply, body)
        return JSONResponse(
            {
                "id": f"msg_{secrets.token_hex(12)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": stop_seq,
                "usage": {
                    "input_tokens": _input_tokens(body),
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": _output_tokens(blocks),
                },
            },
            headers={"request-id": "req_fake"},
        )

    async def _stream(self, reply: Reply, body: dict[str, Any]) -> AsyncIterator[bytes]:
        start = {
            "type": "message_start",
            "message": {
                "id": f"msg_{secrets.token_hex(12)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": _input_tokens(body),
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }
        yield _sse("message_start", start)
        if isinstance(reply, StreamError):
            if reply.after_text:
                yield _block_start(0, _EMPTY_TEXT)
                yield _delta(0, {"type": "text_delta", "text": reply.after_text})
            yield _sse("error", _error_body(reply.type, reply.message))
            return
        if isinstance(reply, Stall | CutOff):
            text = reply.text if isinstance(reply, CutOff) else "Thinking"
            if not (isinstance(reply, Stall) and reply.before_text):
                yield _block_start(0, _EMPTY_TEXT)
                yield _delta(0, {"type": "text_delta", "text": text})
            if isinstance(reply, Stall):
                waited = 0.0
                while waited < reply.seconds:
                    await asyncio.sleep(0.05)
                    waited += 0.05
                    if reply.pings:
                        yield _sse("ping", {"type": "ping"})
            return  # CutOff: the connection closes without message_stop
        if isinstance(reply, Error):
            raise AssertionError("HTTP errors are answered before the stream")
        blocks, stop_reason, stop_seq = _content(reply, body)
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                yield _block_start(index, _EMPTY_TEXT)
                if index == 0:
                    yield _sse("ping", {"type": "ping"})
                for piece in re.findall(r"\S+\s*|\s+", block["text"]):
                    yield _delta(index, {"type": "text_delta", "text": piece})
            else:
                start_block = {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": {},
                }
                yield _block_start(index, start_block)
                if index == 0:
                    yield _sse("ping", {"type": "ping"})
                # Like Anthropic: an empty fragment first, then pieces of the JSON text.
                for piece in ["", *_fragments(orjson.dumps(block["input"]).decode(), 7)]:
                    yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_seq},
                "usage": {"output_tokens": _output_tokens(blocks)},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})


# --- helpers for tests -------------------------------------------------------------------

KEY_ENV = "AIRLOCK_TEST_ANTHROPIC_KEY"
UPSTREAM_MODEL = "claude-fake-1"


def deployment(
    fake: FakeAnthropic,
    *,
    connect: float = 2.0,
    first_token: float = 5.0,
    total: float = 10.0,
    **extra: Any,
) -> DeploymentConfig:
    return DeploymentConfig(
        provider="anthropic",
        name="claude-test",
        base_url=fake.base_url,
        api_key_env=KEY_ENV,
        upstream_model=UPSTREAM_MODEL,
        region="us",
        timeouts=TimeoutConfig(connect=connect, first_token=first_token, total=total),
        **extra,
    )


@asynccontextmanager
async def open_provider(fake: FakeAnthropic, **kw: Any) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(deployment(fake, **kw), "claude-test")
    await provider.start()
    try:
        yield provider
    finally:
        await provider.aclose()


def request(**body: Any) -> ChatCompletionRequest:
    body.setdefault("messages", [{"role": "user", "content": "Hi there"}])
    return parse_request(ChatCompletionRequest, {"model": "claude", **body})


CTX = CallContext(request_id="req-test", model=UPSTREAM_MODEL)


async def chat(provider: AnthropicProvider, **body: Any) -> ChatCompletion:
    return await provider.chat(request(**body), CTX)


async def stream(provider: AnthropicProvider, **body: Any) -> list[ChatCompletionChunk]:
    gen = provider.chat_stream(request(stream=True, **body), CTX)
    try:
        return [chunk async for chunk in gen]
    finally:
        await gen.aclose()
