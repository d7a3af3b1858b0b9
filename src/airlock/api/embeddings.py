"""``POST /v1/embeddings``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.responses import json_response
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.parsing import parse_request
from airlock.providers.base import CallContext

__all__ = ["embeddings"]


async def embeddings(request: Request) -> Response:
    gw, ctx = gateway_of(request), context_of(request)
    ctx.endpoint = "embeddings"
    principal = await gw.authenticate(request)
    req = parse_request(EmbeddingRequest, await gw.read_body(request))
    gw.note_unknown_fields(request, req.unknown_fields())
    dep = gw.route(request, req.model, principal, "embeddings")
    dep.in_flight += 1
    try:
        result = await dep.provider.embed(
            req, CallContext(request_id=ctx.request_id, model=dep.upstream_model)
        )
    finally:
        dep.in_flight -= 1
    result.model = dep.model.name
    ctx.prompt_tokens = result.usage.get("prompt_tokens", 0)
    return json_response(result)
