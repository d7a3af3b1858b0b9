"""``POST /v1/completions`` (legacy text completions)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.inspect import completion_texts, other_texts
from airlock.api.responses import json_response
from airlock.api.streaming import open_stream, relay_stream
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.parsing import parse_request
from airlock.protocol.responses import Completion
from airlock.providers.base import CallContext
from airlock.routing.router import RouteRequest
from airlock.routing.table import Deployment

__all__ = ["completions"]


async def completions(request: Request) -> Response:
    gw, ctx = gateway_of(request), context_of(request)
    ctx.endpoint = "completions"
    principal = await gw.authenticate(request)
    req = parse_request(CompletionRequest, await gw.read_body(request))
    gw.note_unknown_fields(request, req.unknown_fields())
    ctx.stream = bool(req.stream)
    text = req.prompt if isinstance(req.prompt, str) else ""
    decision = await gw.prepare(
        request,
        principal,
        RouteRequest(model=req.model, capability="completions", text=text),
        completion_texts(req),
        req.max_tokens,
        other_texts(req, "prompt"),
    )

    if req.stream:

        async def open_attempt(
            dep: Deployment,
        ) -> tuple[Completion | None, AsyncGenerator[Completion, None]]:
            call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
            return await open_stream(dep.track(dep.provider.completion_stream(req, call)))

        opened = await gw.call(request, decision, open_attempt)
        first, rest = opened.value
        return relay_stream(
            first,
            rest,
            ctx,
            public_model=opened.deployment.model.name,
            include_usage=req.wants_usage_chunk,
        )

    async def attempt(dep: Deployment) -> Completion:
        call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
        with dep.busy():
            return await dep.provider.completion(req, call)

    done = await gw.call(request, decision, attempt)
    result = done.value
    result.model = done.deployment.model.name
    ctx.answered(result)
    return json_response(result)
