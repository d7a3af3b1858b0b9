"""``POST /v1/embeddings``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.inspect import embedding_texts, other_texts
from airlock.api.responses import json_response
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.parsing import parse_request
from airlock.protocol.responses import EmbeddingResponse
from airlock.providers.base import CallContext
from airlock.routing.router import RouteRequest
from airlock.routing.table import Deployment

__all__ = ["embeddings"]


async def embeddings(request: Request) -> Response:
    gw, ctx = gateway_of(request), context_of(request)
    ctx.endpoint = "embeddings"
    principal = await gw.authenticate(request)
    req = parse_request(EmbeddingRequest, await gw.read_body(request))
    gw.note_unknown_fields(request, req.unknown_fields())
    decision = await gw.prepare(
        request,
        principal,
        RouteRequest(model=req.model, capability="embeddings"),
        embedding_texts(req),
        others=other_texts(req, "input"),
    )

    async def attempt(dep: Deployment) -> EmbeddingResponse:
        call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
        with dep.busy():
            return await dep.provider.embed(req, call)

    done = await gw.call(request, decision, attempt)
    result = done.value
    result.model = done.deployment.model.name
    ctx.prompt_tokens = result.usage.get("prompt_tokens", 0)
    return json_response(result)
