"""Any OpenAI-compatible ``/v1`` upstream: vLLM, OpenAI, Mistral, Groq, llama.cpp server…"""

from __future__ import annotations

import os
import time
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
from airlock.providers.resources import Resources
from airlock.providers.sse import iter_sse
from airlock.providers.upstream_errors import from_exception, from_response

__all__ = ["OpenAICompatibleProvider", "openai_compatible"]

M = TypeVar("M", bound=BaseModel)


def _capabilities(model: ModelConfig) -> Capabilities:
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
        self.capabilities = _capabilities(model)
        self._name = name
        self._config = deployment
        self._client: httpx.AsyncClient | None = None

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
        self._client = httpx.AsyncClient(
            base_url=str(self._config.base_url).rstrip("/"),
            headers=self._headers(),
            # ``read`` bounds the wait for each piece of the response, so it is the
            # time-to-first-token limit; the total is enforced around each call.
            timeout=httpx.Timeout(
                connect=t.connect, read=t.first_token, write=t.connect, pool=t.connect
            ),
            limits=httpx.Limits(
                max_connections=self._config.max_concurrency,
                max_keepalive_connections=self._config.max_concurrency,
                keepalive_expiry=30,
            ),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("provider used before start()")
        return self._client

    async def check_health(self) -> bool:
        try:
            resp = await self.client.get("/models", timeout=self._config.timeouts.connect)
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
        try:
            with anyio.fail_after(self._config.timeouts.total):
                resp = await self.client.post(
                    path,
                    content=self._body(req, ctx, stream=False),
                    headers={"content-type": "application/json", "x-request-id": ctx.request_id},
                )
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"The upstream deployment '{self._name}' did not finish in time.", retryable=False
            ) from None
        except httpx.HTTPError as exc:
            raise from_exception(exc, self._name) from None
        if resp.status_code != 200:
            raise from_response(resp.status_code, resp.headers, resp.content, self._name)
        try:
            return out.model_validate_json(resp.content)
        except ValidationError:
            raise from_exception(ValueError(), self._name) from None

    async def _stream(
        self, path: str, req: BaseModel, ctx: CallContext, out: type[M]
    ) -> AsyncGenerator[M, None]:
        request = self.client.build_request(
            "POST",
            path,
            content=self._body(req, ctx, stream=True),
            headers={
                "content-type": "application/json",
                "accept": "text/event-stream",
                "x-request-id": ctx.request_id,
            },
        )
        # No cancel scope may span the yields below (the gateway pulls the first chunk
        # in one task and the rest in another), so the total time is checked per chunk
        # and a silent upstream is caught by the client's read timeout.
        deadline = time.monotonic() + self._config.timeouts.total
        try:
            resp = await self.client.send(request, stream=True)
            try:
                if resp.status_code != 200:
                    body = await resp.aread()
                    raise from_response(resp.status_code, resp.headers, body, self._name)
                async for event in iter_sse(resp):
                    if event.data == "[DONE]":
                        return
                    if event.event == "error" or event.data.startswith('{"error"'):
                        raise from_response(502, resp.headers, event.data.encode(), self._name)
                    try:
                        yield out.model_validate_json(event.data)
                    except ValidationError:
                        raise from_exception(ValueError(), self._name) from None
                    if time.monotonic() > deadline:
                        raise UpstreamTimeoutError(
                            f"The upstream deployment '{self._name}' did not finish in time.",
                            retryable=False,
                        )
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            raise from_exception(exc, self._name) from None
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
