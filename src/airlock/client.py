"""A thin wrapper over the official ``openai`` client: request ids and metadata-only logs.

For applications that call airlock (or any OpenAI-compatible server)::

    from airlock.client import PrivateClient

    client = PrivateClient(base_url="http://127.0.0.1:8080/v1", api_key=key)
    reply = client.chat.completions.create(model="auto", messages=[...])

``chat.completions.create`` takes exactly what the ``openai`` client takes (plus an
optional ``request_id``) and returns what it returns; streams come back wrapped in
an object that iterates the same chunks. Every call sends an ``x-request-id`` (the
caller's or a new one) and, when it ends, writes one record to the stdlib logger
``airlock.client``: request ids, requested and served model, airlock's route headers,
duration, time to first token for streams, token counts, finish reason, HTTP status
and error type. Prompts, completions, error messages and the API key are never logged.

``openai`` is an optional dependency (``pip install 'airlock[client]'``), imported
only when a client is built. Other attributes (``client.models``, ``client.embeddings``,
...) are the underlying client's and are not logged.
"""

from __future__ import annotations

import inspect
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

__all__ = [
    "LoggedAsyncStream",
    "LoggedStream",
    "PrivateAsyncClient",
    "PrivateClient",
    "new_request_id",
]

_LOGGER = "airlock.client"
_EVENT = "chat.completions.create"
# Header values are metadata, but a foreign server could put anything there: only
# short, plain values are logged.
_SAFE_HEADER = re.compile(r"^[A-Za-z0-9 ._:/@+=,()-]{1,160}$")


def _openai() -> ModuleType:
    try:
        import openai
    except ImportError as exc:
        raise ImportError(
            "airlock.client needs the 'openai' package: pip install 'airlock[client]'"
        ) from exc
    return openai


def new_request_id() -> str:
    """A request id airlock honours (it accepts ``[A-Za-z0-9._:-]{8,128}``)."""
    return "req_" + secrets.token_hex(12)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return value if value is not None and _SAFE_HEADER.match(value) else None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass(slots=True)
class _Call:
    """The metadata of one call, filled in as it goes and logged once."""

    log: logging.Logger
    request_id: str
    model_requested: str | None
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    first_output: float | None = None
    server_request_id: str | None = None
    route: str | None = None
    route_reason: str | None = None
    status: int | None = None
    model_served: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    logged: bool = False

    def response(self, status: int | None, headers: Mapping[str, str] | None) -> None:
        self.status = status
        self.server_request_id = _header(headers, "x-request-id")
        self.route = _header(headers, "x-airlock-route")
        self.route_reason = _header(headers, "x-airlock-route-reason")

    def completion(self, reply: ChatCompletion) -> None:
        self.model_served = reply.model
        if reply.usage is not None:
            self.prompt_tokens = reply.usage.prompt_tokens
            self.completion_tokens = reply.usage.completion_tokens
        if reply.choices:
            self.finish_reason = reply.choices[0].finish_reason

    def chunk(self, chunk: ChatCompletionChunk) -> None:
        self.model_served = chunk.model or self.model_served
        if chunk.usage is not None:
            self.prompt_tokens = chunk.usage.prompt_tokens
            self.completion_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            d = choice.delta
            if self.first_output is None and (d.content or d.tool_calls or d.refusal):
                self.first_output = time.perf_counter()
            if choice.finish_reason is not None and choice.index == 0:
                self.finish_reason = choice.finish_reason

    def done(self, outcome: str, exc: BaseException | None = None) -> None:
        if self.logged:
            return
        self.logged = True
        fields: dict[str, object] = {
            "request_id": self.request_id,
            "server_request_id": self.server_request_id,
            "model_requested": self.model_requested,
            "model_served": self.model_served,
            "route": self.route,
            "route_reason": self.route_reason,
            "stream": self.stream,
            "outcome": outcome,
            "status": self.status,
            "duration_ms": _ms(time.perf_counter() - self.started),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
        }
        if self.stream:
            first = self.first_output
            fields["ttft_ms"] = _ms(first - self.started) if first is not None else None
        if exc is not None:
            # The type and status only: messages and bodies can quote the prompt.
            fields["error_type"] = type(exc).__name__
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                fields["status"] = status
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            if headers is not None and self.server_request_id is None:
                fields["server_request_id"] = _header(headers, "x-request-id")
                fields["route"] = _header(headers, "x-airlock-route")
            self.log.warning(_EVENT, extra=fields)
        else:
            self.log.info(_EVENT, extra=fields)


def _prepare(
    kwargs: dict[str, Any], stream: bool | None, request_id: str | None, log: logging.Logger
) -> tuple[dict[str, Any], _Call]:
    """The call's arguments with an ``x-request-id`` header, and its log record."""
    headers = dict(kwargs.pop("extra_headers", None) or {})
    given = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
    rid = request_id or (given if isinstance(given, str) else None) or new_request_id()
    headers = {k: v for k, v in headers.items() if k.lower() != "x-request-id"}
    headers["x-request-id"] = rid
    kwargs["extra_headers"] = headers
    if stream is not None:
        kwargs["stream"] = stream
    model = kwargs.get("model")
    call = _Call(log, rid, model if isinstance(model, str) else None, bool(stream))
    return kwargs, call


S = TypeVar("S")


class _LoggedStreamBase(Generic[S]):
    """What the sync and async logged streams share: the wrapped stream, its call's
    metadata, and attribute pass-through."""

    def __init__(self, stream: S, call: _Call) -> None:
        self._stream = stream
        self._call = call

    @property
    def request_id(self) -> str:
        """The server's request id, or the one sent when the server returned none."""
        return self._call.server_request_id or self._call.request_id

    @property
    def stream(self) -> S:
        return self._stream

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)


class LoggedStream(_LoggedStreamBase["openai.Stream[ChatCompletionChunk]"]):
    """An ``openai.Stream`` of chat chunks that logs its call's metadata when it ends."""

    def __iter__(self) -> LoggedStream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            chunk = self._stream.__next__()
        except StopIteration:
            self._call.done("ok")
            raise
        except BaseException as exc:
            self._call.done("error", exc)
            raise
        self._call.chunk(chunk)
        return chunk

    def close(self) -> None:
        self._stream.close()
        self._call.done("closed")

    def __enter__(self) -> LoggedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LoggedAsyncStream(_LoggedStreamBase["openai.AsyncStream[ChatCompletionChunk]"]):
    """An ``openai.AsyncStream`` of chat chunks that logs its call's metadata when it ends."""

    def __aiter__(self) -> LoggedAsyncStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._call.done("ok")
            raise
        except BaseException as exc:
            self._call.done("error", exc)
            raise
        self._call.chunk(chunk)
        return chunk

    async def close(self) -> None:
        await self._stream.close()
        self._call.done("closed")

    async def __aenter__(self) -> LoggedAsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _Completions:
    def __init__(self, client: openai.OpenAI, log: logging.Logger) -> None:
        self._client = client
        self._log = log

    @overload
    def create(
        self, *, stream: Literal[True], request_id: str | None = None, **kwargs: Any
    ) -> LoggedStream: ...
    @overload
    def create(
        self,
        *,
        stream: Literal[False] | None = None,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> ChatCompletion: ...
    @overload
    def create(
        self, *, stream: bool, request_id: str | None = None, **kwargs: Any
    ) -> ChatCompletion | LoggedStream: ...

    def create(
        self, *, stream: bool | None = None, request_id: str | None = None, **kwargs: Any
    ) -> ChatCompletion | LoggedStream:
        """``OpenAI().chat.completions.create`` with a request id and a metadata log record."""
        kwargs, call = _prepare(kwargs, stream, request_id, self._log)
        try:
            raw = self._client.chat.completions.with_raw_response.create(**kwargs)
            call.response(raw.status_code, raw.headers)
            parsed = raw.parse()
        except BaseException as exc:
            call.done("error", exc)
            raise
        if stream:
            return LoggedStream(parsed, call)
        call.completion(parsed)
        call.done("ok")
        return parsed  # type: ignore[no-any-return]


class _AsyncCompletions:
    def __init__(self, client: openai.AsyncOpenAI, log: logging.Logger) -> None:
        self._client = client
        self._log = log

    @overload
    async def create(
        self, *, stream: Literal[True], request_id: str | None = None, **kwargs: Any
    ) -> LoggedAsyncStream: ...
    @overload
    async def create(
        self,
        *,
        stream: Literal[False] | None = None,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> ChatCompletion: ...
    @overload
    async def create(
        self, *, stream: bool, request_id: str | None = None, **kwargs: Any
    ) -> ChatCompletion | LoggedAsyncStream: ...

    async def create(
        self, *, stream: bool | None = None, request_id: str | None = None, **kwargs: Any
    ) -> ChatCompletion | LoggedAsyncStream:
        """``AsyncOpenAI().chat.completions.create`` with a request id and a log record."""
        kwargs, call = _prepare(kwargs, stream, request_id, self._log)
        try:
            raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
            call.response(raw.status_code, raw.headers)
            parsed = raw.parse()
            # openai documents that ``parse`` becomes a coroutine for async clients.
            if inspect.isawaitable(parsed):
                parsed = await parsed
        except BaseException as exc:
            call.done("error", exc)
            raise
        if stream:
            return LoggedAsyncStream(parsed, call)
        call.completion(parsed)
        call.done("ok")
        return parsed  # type: ignore[no-any-return]


class _Chat:
    def __init__(self, completions: _Completions) -> None:
        self.completions = completions


class _AsyncChat:
    def __init__(self, completions: _AsyncCompletions) -> None:
        self.completions = completions


class PrivateClient:
    """``openai.OpenAI`` with request-id correlation and metadata-only logging of chat calls.

    Pass the ``openai.OpenAI`` arguments (``base_url``, ``api_key``, ``timeout``, ...),
    or an existing client as ``client``.
    """

    def __init__(
        self,
        *,
        client: openai.OpenAI | None = None,
        logger: logging.Logger | None = None,
        **kwargs: Any,
    ) -> None:
        if client is not None and kwargs:
            raise TypeError("pass either an existing client or OpenAI arguments, not both")
        self._client: openai.OpenAI = client if client is not None else _openai().OpenAI(**kwargs)
        self.chat = _Chat(_Completions(self._client, logger or logging.getLogger(_LOGGER)))

    @property
    def wrapped(self) -> openai.OpenAI:
        """The wrapped client (its calls are not logged)."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return "PrivateClient()"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrivateClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PrivateAsyncClient:
    """``openai.AsyncOpenAI`` with request-id correlation and metadata-only logging."""

    def __init__(
        self,
        *,
        client: openai.AsyncOpenAI | None = None,
        logger: logging.Logger | None = None,
        **kwargs: Any,
    ) -> None:
        if client is not None and kwargs:
            raise TypeError("pass either an existing client or AsyncOpenAI arguments, not both")
        self._client: openai.AsyncOpenAI = (
            client if client is not None else _openai().AsyncOpenAI(**kwargs)
        )
        self.chat = _AsyncChat(
            _AsyncCompletions(self._client, logger or logging.getLogger(_LOGGER))
        )

    @property
    def wrapped(self) -> openai.AsyncOpenAI:
        return self._client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return "PrivateAsyncClient()"

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> PrivateAsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
