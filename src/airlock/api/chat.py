"""``POST /v1/chat/completions``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.responses import json_response
from airlock.api.streaming import relay_stream
from airlock.errors import UnsupportedParameterError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.parsing import parse_request
from airlock.providers.base import CallContext

__all__ = ["chat_completions"]


async def chat_completions(request: Request) -> Response:
    gw, ctx = gateway_of(request), context_of(request)
    ctx.endpoint = "chat.completions"
    principal = await gw.authenticate(request)
    req = parse_request(ChatCompletionRequest, await gw.read_body(request))
    gw.note_unknown_fields(request, req.unknown_fields())
    ctx.stream = bool(req.stream)
    dep = gw.route(request, req.model, principal, "chat")
    caps = dep.provider.capabilities
    if req.tools and not caps.tools:
        raise UnsupportedParameterError(
            f"The model '{dep.model.name}' does not support tools.", param="tools"
        )
    if req.response_format is not None and req.response_format.type != "text":
        wanted = caps.json_schema if req.response_format.type == "json_schema" else caps.json_mode
        if not wanted:
            raise UnsupportedParameterError(
                f"The model '{dep.model.name}' does not support response_format "
                f"'{req.response_format.type}'.",
                param="response_format",
            )
    call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
    if req.stream:
        return await relay_stream(
            dep.track(dep.provider.chat_stream(req, call)),
            ctx,
            public_model=dep.model.name,
            include_usage=req.wants_usage_chunk,
        )
    dep.in_flight += 1
    try:
        result = await dep.provider.chat(req, call)
    finally:
        dep.in_flight -= 1
    ctx.first_token_at = time.perf_counter()
    result.model = dep.model.name
    if result.usage is not None:
        ctx.prompt_tokens = result.usage.prompt_tokens
        ctx.completion_tokens = result.usage.completion_tokens
    if result.choices:
        ctx.finish_reason = result.choices[0].finish_reason
    return json_response(result)
