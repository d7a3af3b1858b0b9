"""``POST /v1/chat/completions``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from airlock.api.gateway import context_of, gateway_of
from airlock.api.inspect import chat_other_texts, chat_texts
from airlock.api.responses import json_response
from airlock.api.streaming import open_stream, relay_stream
from airlock.config import Capability
from airlock.errors import UnsupportedParameterError
from airlock.privacy.pseudonymize import Pseudonymizer, pseudonymize_request
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


async def _restored(
    stream: AsyncGenerator[ChatCompletionChunk, None], pz: Pseudonymizer
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """Put the caller's values back into a pseudonymised stream, chunk by chunk."""
    restorer = pz.stream_restorer()
    try:
        async for chunk in stream:
            yield restorer.restore_chunk(chunk)
        last = restorer.finish()
        if last is not None:
            yield last
    finally:
        await stream.aclose()


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
            model=req.model,
            capability="chat",
            needs=_needs(req),
            text=_routing_text(req),
            can_pseudonymize=True,
        ),
        chat_texts(req),
        req.output_token_limit,
        chat_other_texts(req),
    )

    def outgoing(dep: Deployment) -> tuple[ChatCompletionRequest, Pseudonymizer | None]:
        """What ``dep`` may see: the request itself, or (sensitive data bound for a
        frontier API under the ``pseudonymize`` policy) a copy with entities replaced;
        the mapping lives only in this attempt."""
        if not gw.pseudonymize_for(request, dep):
            return req, None
        if req.logprobs:
            raise UnsupportedParameterError(
                "logprobs cannot be returned for a pseudonymised request: the tokens "
                "would show placeholders, not your text.",
                param="logprobs",
            )
        return pseudonymize_request(req, gw.services.inspector.detector)

    if req.stream:

        async def open_attempt(
            dep: Deployment,
        ) -> tuple[ChatCompletionChunk | None, AsyncGenerator[ChatCompletionChunk, None]]:
            _check_provider(req, dep)
            sent, pz = outgoing(dep)
            call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
            stream = dep.track(dep.provider.chat_stream(sent, call))
            if pz is not None:
                stream = _restored(stream, pz)
            return await open_stream(stream)

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
        sent, pz = outgoing(dep)
        call = CallContext(request_id=ctx.request_id, model=dep.upstream_model)
        with dep.busy():
            answer = await dep.provider.chat(sent, call)
        return answer if pz is None else pz.restore_completion(answer)

    done = await gw.call(request, decision, attempt)
    result = done.value
    result.model = done.deployment.model.name
    ctx.answered(result)
    return json_response(result)
