"""``POST /v1/chat/completions``."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.inspect import chat_texts
from airlock.api.responses import json_response
from airlock.api.streaming import open_stream, relay_stream
from airlock.config import Capability
from airlock.errors import UnsupportedParameterError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.parsing import parse_request
from airlock.protocol.responses import ChatCompletion, ChatCompletionChunk
from airlock.providers.base import CallContext
from airlock.routing.router import RouteRequest
from airlock.routing.table import Deployment

__all__ = ["chat_completions"]


def _needs(req: ChatCompletionRequest) -> frozenset[Capability]:
    needs: set[Capability] = set()
    if req.tools and req.tool_choice != "none":
        needs.add("tools")
    if req.response_format is not None and req.response_format.type != "text":
        needs.add("json_mode")
    return frozenset(needs)


def _check_provider(req: ChatCompletionRequest, dep: Deployment) -> None:
    caps = dep.provider.capabilities
    if req.tools and not caps.tools:
        raise UnsupportedParameterError(
            f"The model '{dep.model.name}' does not support tools.", param="tools"
        )
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        ok = caps.json_schema if fmt.type == "json_schema" else caps.json_mode
        if not ok:
            raise UnsupportedParameterError(
                f"The model '{dep.model.name}' does not support response_format '{fmt.type}'.",
                param="response_format",
            )


def _routing_text(req: ChatCompletionRequest) -> str:
    """The text the complexity scorer sees: the last user message."""
    for msg in reversed(req.messages):
        if msg.role == "user":
            try:
                return msg.text() or ""
            except ValueError:
                return ""
    return ""


async def chat_completions(request: Request) -> Response:
    gw, ctx = gateway_of(request), context_of(request)
    ctx.endpoint = "chat.completions"
    principal = await gw.authenticate(request)
    req = parse_request(ChatCompletionRequest, await gw.read_body(request))
    gw.note_unknown_fields(request, req.unknown_fields())
    ctx.stream = bool(req.stream)
    decision = await gw.prepare(
        request,
        principal,
        RouteRequest(
            model=req.model, capability="chat", needs=_needs(req), text=_routing_text(req)
        ),
        chat_texts(req),
        req.output_token_limit,
    )

    if req.stream:

        async def open_attempt(
            dep: Deployment,
        ) -> tuple[ChatCompletionChunk | None, AsyncGenerator[ChatCompletionChunk, None]]:
            _check_provider(req, dep)
            call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
            return await open_stream(dep.track(dep.provider.chat_stream(req, call)))

        opened = await gw.call(request, decision, open_attempt)
        first, rest = opened.value
        return relay_stream(
            first,
            rest,
            ctx,
            public_model=opened.deployment.model.name,
            include_usage=req.wants_usage_chunk,
        )

    async def attempt(dep: Deployment) -> ChatCompletion:
        _check_provider(req, dep)
        call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
        dep.in_flight += 1
        try:
            return await dep.provider.chat(req, call)
        finally:
            dep.in_flight -= 1

    done = await gw.call(request, decision, attempt)
    result = done.value
    ctx.first_token_at = time.perf_counter()
    result.model = done.deployment.model.name
    if result.usage is not None:
        ctx.prompt_tokens = result.usage.prompt_tokens
        ctx.completion_tokens = result.usage.completion_tokens
    if result.choices:
        ctx.finish_reason = result.choices[0].finish_reason
    return json_response(result)
