"""Anthropic's native Messages API (``POST {base_url}/v1/messages``) behind the OpenAI API.

Configuration (``DeploymentConfig``): ``base_url`` defaults to ``https://api.anthropic.com``
(a trailing ``/v1`` is accepted); the API key is read from the environment variable named
by ``api_key_env`` (default ``ANTHROPIC_API_KEY``), never from the config file;
``upstream_model`` is the Claude model id; ``options.default_max_tokens`` (default 4096) is
sent when the caller gives neither ``max_completion_tokens`` nor ``max_tokens``, because
Anthropic requires a limit.

Request mapping:

* system and developer messages, wherever they appear, join the top-level ``system``;
  consecutive turns of the same role are merged (Anthropic requires alternation); empty
  turns are dropped.
* content parts: text; images as base64 ``data:`` URLs (JPEG, PNG, GIF, WebP) or http(s)
  URLs; anything else is refused with a 400 naming the part.
* assistant ``tool_calls`` → ``tool_use`` blocks; ``tool`` messages → ``tool_result`` blocks
  of a user turn (consecutive results merged, placed before any text of that turn).
* tools → ``tools`` with ``input_schema``; ``tool_choice`` none/auto/required/named →
  none/auto/any/tool; ``parallel_tool_calls: false`` → ``disable_parallel_tool_use``.
* ``stop`` → ``stop_sequences``; ``top_p`` as is; ``temperature`` clamped to Anthropic's
  0–1. ``n`` > 1 and ``logprobs`` are refused (400); ``seed``, penalties and
  ``logit_bias`` are ignored, like Anthropic's own OpenAI compatibility layer; ``user``
  is not forwarded (it would identify an end user to a third party).

JSON mode uses a forced tool for both kinds: ``response_format`` adds a tool whose
``input_schema`` is the requested schema (``json_object``: any object, tool
``json_response``; ``json_schema``: the schema, tool named after it, non-object schemas
wrapped as ``{"value": …}``), and its input is returned as the message ``content`` with
``finish_reason`` "stop" — Anthropic always produces tool input as valid JSON. When the
caller also offers tools (``tool_choice`` auto), the model must call one of them or the
JSON tool (``any``); with ``required`` or a named tool, no JSON tool is added. Text outside
the JSON tool is dropped. With ``strict: true`` the final object is checked against the
schema; a final answer that is not valid JSON is an ``UpstreamError``
(``upstream_invalid_json``, retryable).

Replies: ``stop_reason`` end_turn/stop_sequence/pause_turn → stop, max_tokens →
length, tool_use → tool_calls, refusal → content_filter; ``usage`` input (plus cached
input) / output tokens → prompt / completion / total.

Errors: a non-200 answer or an ``event: error`` in the stream becomes the typed error of
:mod:`airlock.providers.upstream_errors` (400/413 → 400; 401/403/404/429/5xx → retryable
``UpstreamError``, 429 as ``UpstreamRateLimitedError``; ``Retry-After`` honoured). 529
``overloaded_error`` is an ``UpstreamOverloadedError``: retryable, 503 to the client, code
``upstream_overloaded``. Only Anthropic's error *type* is read from an error body: its
message may quote the prompt. Timeouts follow the openai-compatible adapter: the first
chunk within ``timeouts.first_token`` (retryable), the whole answer within
``timeouts.total`` (not retryable once content was sent).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import httpx
import orjson
from pydantic import ValidationError

from airlock.config import DeploymentConfig, ModelConfig
from airlock.errors import AirlockError, UpstreamError, UpstreamTimeoutError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.responses import ChatCompletion, ChatCompletionChunk
from airlock.providers.anthropic_stream import ChunkTranslator
from airlock.providers.anthropic_translate import (
    DEFAULT_MAX_TOKENS,
    AnthropicMessage,
    build_request,
    to_chat_completion,
)
from airlock.providers.base import CallContext, Capabilities, Provider
from airlock.providers.http import no_cookies
from airlock.providers.resources import Resources
from airlock.providers.sse import SseEvent, drain, iter_sse
from airlock.providers.upstream_errors import error_object, from_exception, from_response

__all__ = [
    "ANTHROPIC_VERSION",
    "CAPABILITIES",
    "DEFAULT_BASE_URL",
    "AnthropicProvider",
    "UpstreamOverloadedError",
    "anthropic",
    "error_from_response",
]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
CAPABILITIES = Capabilities(chat=True, tools=True, json_mode=True, json_schema=True)

# Anthropic's documented error types and the HTTP status each one comes with; used for
# ``event: error`` in a stream, which has no status of its own.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class UpstreamOverloadedError(UpstreamError):
    """Anthropic answered 529 ``overloaded_error``: short of capacity for everyone, not a
    fault of this request. Retried elsewhere; passed on as 503 when nothing else answered."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "upstream_overloaded"


def _error_info(body: bytes) -> tuple[str | None, str | None]:
    """Anthropic's error type and ``details.error_code``, if they are known identifiers."""
    err = error_object(body)
    if err is None:
        return None, None
    kind = err.get("type")
    details = err.get("details")
    detail = details.get("error_code") if isinstance(details, dict) else None
    return (
        kind if kind in _ERROR_STATUS else None,
        "spend_limit" if detail == "enforced_spend_limit_reached" else None,
    )


def error_from_response(
    status: int, headers: httpx.Headers, body: bytes, deployment: str
) -> AirlockError:
    """Map an Anthropic error answer to airlock's typed error, never quoting the body."""
    kind, detail = _error_info(body)
    # Hand upstream_errors only the error type, in the shape it reads a code from.
    safe = orjson.dumps({"error": {"code": kind}}) if kind else b""
    err = from_response(status, headers, safe, deployment)
    if not isinstance(err, UpstreamError):
        return err
    if status == 529 or kind == "overloaded_error":
        overloaded = UpstreamOverloadedError(
            err.message,
            retryable=True,
            retry_after=err.retry_after,
            upstream_status=status,
        )
        overloaded.headers.update(err.headers)  # Retry-After, already made safe
        return overloaded
    if detail == "spend_limit":
        # The organisation's monthly spend limit: waiting a few seconds will not help.
        err.code = "upstream_quota_exhausted"
    return err


def _messages_url(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


class AnthropicProvider(Provider):
    capabilities = CAPABILITIES

    def __init__(self, deployment: DeploymentConfig, name: str) -> None:
        self._name = name
        self._config = deployment
        self._base_url = _messages_url(deployment.base_url or DEFAULT_BASE_URL)
        raw = deployment.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            raise ValueError(
                f"deployment '{name}': options.default_max_tokens must be a positive integer"
            )
        self._default_max_tokens = raw
        self._client: httpx.AsyncClient | None = None
        self._probe: httpx.AsyncClient | None = None

    def _headers(self) -> dict[str, str]:
        env = self._config.api_key_env or DEFAULT_KEY_ENV
        key = os.environ.get(env)
        if not key:
            raise ValueError(
                f"deployment '{self._name}': environment variable {env} (api_key_env) is not "
                "set; it must hold the Anthropic API key"
            )
        return {
            "x-api-key": key,
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
        }

    async def start(self) -> None:
        t = self._config.timeouts
        headers = self._headers()
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=headers,
            # ``read`` bounds each wait for a piece of the response: in a stream, the
            # longest silence between two events (Anthropic pings idle streams). The
            # first-token and total limits are enforced around each call.
            timeout=httpx.Timeout(
                connect=t.connect, read=t.first_token, write=t.connect, pool=t.connect
            ),
            limits=httpx.Limits(
                max_connections=self._config.max_concurrency,
                max_keepalive_connections=self._config.max_concurrency,
                keepalive_expiry=30,
            ),
            follow_redirects=False,
            cookies=no_cookies(),
        )
        # Health probes get a connection of their own: a deployment whose
        # max_concurrency connections are all busy is loaded, not unhealthy.
        self._probe = httpx.AsyncClient(
            base_url=self._base_url,
            headers=headers,
            timeout=httpx.Timeout(t.connect),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
            cookies=no_cookies(),
        )

    async def aclose(self) -> None:
        for client in (self._client, self._probe):
            if client is not None:
                await client.aclose()
        self._client = self._probe = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("provider used before start()")
        return self._client

    async def check_health(self) -> bool:
        if self._probe is None:
            raise RuntimeError("provider used before start()")
        # Listing models costs no tokens; any answer below 500 (even 401) shows the API
        # is up: a bad key is a configuration problem that requests report themselves.
        try:
            resp = await self._probe.get("/v1/models")
        except httpx.HTTPError:
            return False
        return resp.status_code < 500

    def _timed_out(self, *, first_token: bool) -> UpstreamTimeoutError:
        if first_token:
            # Nothing reached the client yet, so another deployment may still answer.
            return UpstreamTimeoutError(
                f"The upstream deployment '{self._name}' did not start answering in time.",
                retryable=True,
            )
        return UpstreamTimeoutError(
            f"The upstream deployment '{self._name}' did not finish in time.", retryable=False
        )

    async def chat(self, req: ChatCompletionRequest, ctx: CallContext) -> ChatCompletion:
        tr = build_request(
            req, ctx.model, default_max_tokens=self._default_max_tokens, stream=False
        )
        t = self._config.timeouts
        try:
            with anyio.fail_after(t.total):
                resp = await self.client.post(
                    "/v1/messages",
                    content=orjson.dumps(tr.body),
                    # A JSON answer arrives whole, after the generation: its head may
                    # take up to the total time (there is no first token to wait for).
                    timeout=httpx.Timeout(
                        connect=t.connect, read=t.total, write=t.connect, pool=t.connect
                    ),
                )
        except TimeoutError:
            raise self._timed_out(first_token=False) from None
        except httpx.HTTPError as exc:
            raise from_exception(exc, self._name) from None
        if resp.status_code != 200:
            raise error_from_response(resp.status_code, resp.headers, resp.content, self._name)
        try:
            msg = AnthropicMessage.model_validate_json(resp.content)
        except ValidationError:
            raise from_exception(ValueError(), self._name) from None
        return to_chat_completion(msg, tr.json_tool, self._name)

    async def chat_stream(
        self, req: ChatCompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        # Translation errors surface on the first ``anext``, before anything is sent.
        tr = build_request(req, ctx.model, default_max_tokens=self._default_max_tokens, stream=True)
        translator = ChunkTranslator(tr.json_tool, self._name)
        request = self.client.build_request(
            "POST",
            "/v1/messages",
            content=orjson.dumps(tr.body),
            headers={"accept": "text/event-stream"},
        )
        t = self._config.timeouts
        now = anyio.current_time()
        end = now + t.total
        first_by = min(end, now + t.first_token)
        got_first = False
        resp: httpx.Response | None = None
        events: AsyncGenerator[SseEvent, None] | None = None
        # Each deadline is a cancel scope around one wait only, never around a yield:
        # the gateway pulls the first chunk in one task and the rest in another. Pings
        # and message_start do not count as the first token; the first chunk does.
        try:
            try:
                with anyio.fail_after(first_by - now):
                    resp = await self.client.send(request, stream=True)
                    if resp.status_code != 200:
                        body = await resp.aread()
                        raise error_from_response(resp.status_code, resp.headers, body, self._name)
                events = iter_sse(resp)
                while True:
                    limit = end if got_first else first_by
                    with anyio.fail_after(max(0.0, limit - anyio.current_time())):
                        event = await anext(events, None)
                    if event is None:
                        break
                    for chunk in self._translate(translator, event, resp.headers):
                        got_first = True
                        yield chunk
                    if translator.done:
                        await drain(events, end)
                        return
            except TimeoutError:
                raise self._timed_out(first_token=not got_first and first_by < end) from None
        except httpx.HTTPError as exc:
            raise from_exception(exc, self._name) from None
        finally:
            with anyio.CancelScope(shield=True):
                if events is not None:
                    await events.aclose()
                if resp is not None:
                    # Closing a response that was not read to its end closes the
                    # connection, which tells Anthropic to stop generating.
                    await resp.aclose()
        # A stream that ends without message_stop was cut off.
        raise from_exception(httpx.RemoteProtocolError("stream ended early"), self._name)

    def _translate(
        self, translator: ChunkTranslator, event: SseEvent, headers: httpx.Headers
    ) -> list[ChatCompletionChunk]:
        try:
            payload: Any = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise from_exception(ValueError(), self._name) from None
        if not isinstance(payload, dict):
            raise from_exception(ValueError(), self._name)
        kind = event.event or payload.get("type")
        if kind == "error":
            # An error after HTTP 200 has no status of its own: use its type's.
            err_type, _ = _error_info(event.data.encode())
            status = _ERROR_STATUS.get(err_type or "", 502)
            raise error_from_response(status, headers, event.data.encode(), self._name)
        try:
            return translator.feed(str(kind), payload)
        except ValueError:  # includes pydantic's ValidationError
            raise from_exception(ValueError(), self._name) from None


def anthropic(dep: DeploymentConfig, model: ModelConfig, resources: Resources) -> Provider:
    del resources  # each deployment owns its connection pool
    index = model.deployments.index(dep)
    return AnthropicProvider(dep, dep.name or f"{model.name}#{index}")
