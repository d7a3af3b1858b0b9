"""Any OpenAI-compatible ``/v1`` upstream: vLLM, OpenAI, Mistral, Groq, llama.cpp server…"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from typing import Any, TypeVar

import anyio
import httpx
import orjson
from pydantic import BaseModel, ValidationError

from airlock.config import DeploymentConfig, ModelConfig
from airlock.errors import UpstreamTimeoutError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    EmbeddingResponse,
)
from airlock.providers.base import CallContext, Capabilities, Provider
from airlock.providers.client_pool import ClientPool
from airlock.providers.http import no_cookies
from airlock.providers.resources import Resources
from airlock.providers.sse import SseEvent, drain, iter_sse
from airlock.providers.upstream_errors import from_exception, from_response

__all__ = ["OpenAICompatibleProvider", "model_capabilities", "openai_compatible"]

M = TypeVar("M", bound=BaseModel)


def model_capabilities(model: ModelConfig) -> Capabilities:
    """What an OpenAI-compatible upstream can do for ``model``: what its config declares
    (vLLM's structured output takes a schema wherever it takes JSON mode)."""
    caps = model.capabilities
    return Capabilities(
        chat="chat" in caps,
        completions="completions" in caps,
        embeddings="embeddings" in caps,
        tools="tools" in caps,
        json_mode="json_mode" in caps,
        json_schema="json_mode" in caps,
    )


class OpenAICompatibleProvider(Provider):
    def __init__(self, deployment: DeploymentConfig, model: ModelConfig, name: str) -> None:
        if not deployment.base_url:
            raise ValueError(f"deployment '{name}' needs a base_url")
        self.capabilities = model_capabilities(model)
        self._name = name
        self._config = deployment
        self._pool: ClientPool | None = None
        self._probe: httpx.AsyncClient | None = None

    def _headers(self) -> dict[str, str]:
        env = self._config.api_key_env
        if env is None:
            return {}
        key = os.environ.get(env)
        if not key:
            raise ValueError(
                f"deployment '{self._name}': environment variable {env} (api_key_env) is not set"
            )
        return {"authorization": f"Bearer {key}"}

    async def start(self) -> None:
        t = self._config.timeouts
        base_url = str(self._config.base_url).rstrip("/")
        headers = self._headers()
        # One TLS context for both clients: building one (loading the CA bundle)
        # costs far more than the client itself.
        tls = httpx.create_ssl_context()

        def make(limits: httpx.Limits) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=base_url,
                headers=headers,
                verify=tls,
                # ``read`` bounds each wait for a piece of the response: in a stream,
                # the longest silence between two events. The first-token and total
                # limits are enforced around each call (``_post``, ``_stream``).
                timeout=httpx.Timeout(
                    connect=t.connect, read=t.first_token, write=t.connect, pool=t.connect
                ),
                limits=limits,
                follow_redirects=False,
                cookies=no_cookies(),
            )

        self._pool = ClientPool(self._config.max_concurrency, make)
        # Health probes get a connection of their own: a deployment whose
        # max_concurrency connections are all busy is loaded, not unhealthy.
        self._probe = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            verify=tls,
            timeout=httpx.Timeout(t.connect),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
            cookies=no_cookies(),
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if self._probe is not None:
            await self._probe.aclose()
        self._pool = self._probe = None

    @property
    def pool(self) -> ClientPool:
        if self._pool is None:
            raise RuntimeError("provider used before start()")
        return self._pool

    async def check_health(self) -> bool:
        if self._probe is None:
            raise RuntimeError("provider used before start()")
        try:
            resp = await self._probe.get("/models")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def _body(self, req: BaseModel, ctx: CallContext, stream: bool) -> bytes:
        body: dict[str, Any] = req.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body["model"] = ctx.model
        if stream:
            body["stream"] = True
            # Always ask for usage so that cost is known; the gateway strips the usage
            # chunk again when the caller did not ask for it.
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return orjson.dumps(body)

    async def _post(self, path: str, req: BaseModel, ctx: CallContext, out: type[M]) -> M:
        t = self._config.timeouts
        try:
            with anyio.fail_after(t.total), self.pool.lease() as client:
                resp = await client.post(
                    path,
                    content=self._body(req, ctx, stream=False),
                    headers={"content-type": "application/json", "x-request-id": ctx.request_id},
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
            raise from_response(resp.status_code, resp.headers, resp.content, self._name)
        try:
            return out.model_validate_json(resp.content)
        except ValidationError:
            raise from_exception(ValueError(), self._name) from None

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

    async def _stream(
        self, path: str, req: BaseModel, ctx: CallContext, out: type[M]
    ) -> AsyncGenerator[M, None]:
        with self.pool.lease() as client:
            inner = self._stream_on(client, path, req, ctx, out)
            try:
                async for chunk in inner:
                    yield chunk
            finally:
                # Closed here, not left to the garbage collector: closing the response
                # is what tells the upstream to stop generating.
                with anyio.CancelScope(shield=True):
                    await inner.aclose()

    async def _stream_on(
        self, client: httpx.AsyncClient, path: str, req: BaseModel, ctx: CallContext, out: type[M]
    ) -> AsyncGenerator[M, None]:
        request = client.build_request(
            "POST",
            path,
            content=self._body(req, ctx, stream=True),
            headers={
                "content-type": "application/json",
                "accept": "text/event-stream",
                "x-request-id": ctx.request_id,
            },
        )
        t = self._config.timeouts
        now = anyio.current_time()
        end = now + t.total
        first_by = min(end, now + t.first_token)
        got_first = False
        resp: httpx.Response | None = None
        events: AsyncGenerator[SseEvent, None] | None = None
        # Each deadline is a cancel scope around one wait only, never around a yield:
        # the gateway pulls the first chunk in one task and the rest in another.
        try:
            try:
                with anyio.fail_after(first_by - now):
                    resp = await client.send(request, stream=True)
                    if resp.status_code != 200:
                        body = await resp.aread()
                        raise from_response(resp.status_code, resp.headers, body, self._name)
                events = iter_sse(resp)
                while True:
                    limit = end if got_first else first_by
                    with anyio.fail_after(max(0.0, limit - anyio.current_time())):
                        event = await anext(events, None)
                    if event is None:
                        break
                    if event.data == "[DONE]":
                        await drain(events, end)
                        return
                    if event.event == "error" or event.data.startswith('{"error"'):
                        raise from_response(502, resp.headers, event.data.encode(), self._name)
                    try:
                        chunk = out.model_validate_json(event.data)
                    except ValidationError:
                        raise from_exception(ValueError(), self._name) from None
                    got_first = True
                    yield chunk
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
                    # connection, which tells the upstream to stop generating.
                    await resp.aclose()
        # A stream that ends without [DONE] was cut off.
        raise from_exception(httpx.RemoteProtocolError("stream ended early"), self._name)

    async def chat(self, req: ChatCompletionRequest, ctx: CallContext) -> ChatCompletion:
        return await self._post("/chat/completions", req, ctx, ChatCompletion)

    def chat_stream(
        self, req: ChatCompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        return self._stream("/chat/completions", req, ctx, ChatCompletionChunk)

    async def completion(self, req: CompletionRequest, ctx: CallContext) -> Completion:
        return await self._post("/completions", req, ctx, Completion)

    def completion_stream(
        self, req: CompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[Completion, None]:
        return self._stream("/completions", req, ctx, Completion)

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> EmbeddingResponse:
        return await self._post("/embeddings", req, ctx, EmbeddingResponse)


def openai_compatible(dep: DeploymentConfig, model: ModelConfig, resources: Resources) -> Provider:
    del resources  # each deployment owns its connection pool
    index = model.deployments.index(dep)
    return OpenAICompatibleProvider(dep, model, dep.name or f"{model.name}#{index}")
