"""The OpenAI-compatible adapter against a real, scripted upstream on loopback.

Every fault is a real HTTP exchange (or a real TCP reset / unanswered connect): the
adapter must map it to the right typed error, respect its three timeouts, and never
leave a connection open that it gave up on (the upstream sees it closed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from airlock.config import DeploymentConfig, ModelConfig, TimeoutConfig
from airlock.errors import BadRequestError, UpstreamError, UpstreamTimeoutError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.responses import ChatCompletionChunk
from airlock.providers.base import CallContext
from airlock.providers.openai_compatible import OpenAICompatibleProvider
from airlock.providers.upstream_errors import DeploymentBusyError, UpstreamRateLimitedError
from tests.support.faulty_upstream import (
    FaultyUpstream,
    blackhole_listener,
    drip,
    error,
    hang,
    malformed,
    ok,
    rate_limited,
    reset,
    slow,
)

PROMPT = "the secret plan is tangerine-42"
CTX = CallContext(request_id="req_test_0001", model="upstream-m")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with FaultyUpstream("u") as up:
        yield up


@pytest.fixture(autouse=True)
def _fresh(upstream: FaultyUpstream) -> None:
    upstream.reset()


def _provider(
    base_url: str,
    *,
    connect: float = 1.0,
    first_token: float = 1.0,
    total: float = 3.0,
    max_concurrency: int = 4,
    api_key_env: str | None = None,
) -> OpenAICompatibleProvider:
    dep = DeploymentConfig(
        provider="openai-compatible",
        base_url=base_url,
        timeouts=TimeoutConfig(connect=connect, first_token=first_token, total=total),
        max_concurrency=max_concurrency,
        api_key_env=api_key_env,
    )
    model = ModelConfig(
        name="m",
        tier="self-hosted",
        capabilities=frozenset({"chat", "completions", "embeddings"}),
        deployments=[dep],
    )
    return OpenAICompatibleProvider(dep, model, "m@0")


@pytest.fixture
async def provider(upstream: FaultyUpstream) -> AsyncIterator[OpenAICompatibleProvider]:
    p = _provider(upstream.base_url)
    await p.start()
    yield p
    await p.aclose()


def _chat(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": PROMPT}], **kw}
    )


async def _collect(p: OpenAICompatibleProvider, **kw: Any) -> list[ChatCompletionChunk]:
    return [c async for c in p.chat_stream(_chat(stream=True, **kw), CTX)]


async def _call(p: OpenAICompatibleProvider, stream: bool) -> object:
    if stream:
        return await _collect(p)
    return await p.chat(_chat(), CTX)


async def _read_into(p: OpenAICompatibleProvider, got: list[ChatCompletionChunk]) -> None:
    async for chunk in p.chat_stream(_chat(stream=True), CTX):
        got.append(chunk)


def _settled(up: FaultyUpstream) -> bool:
    """Every request the upstream got has ended (completed, aborted or reset)."""
    return up.active == 0 and all(r.outcome is not None for r in up.requests)


# -- normal answers ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_json_answer_and_request_shape(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    out = await provider.chat(_chat(temperature=0.5), CTX)
    assert out.choices[0].message.content == "u0 u1 u2 "
    assert out.usage is not None
    assert out.usage.completion_tokens == 3
    (rec,) = upstream.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.body is not None
    # The upstream's own model name replaces the public one; unset fields stay unset.
    assert rec.body["model"] == "upstream-m"
    assert rec.body["temperature"] == 0.5
    assert "stream" not in rec.body
    assert "stream_options" not in rec.body
    assert rec.headers["x-request-id"] == "req_test_0001"
    assert "authorization" not in rec.headers


@pytest.mark.anyio
async def test_stream_asks_for_usage_and_ends_at_done(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    chunks = await _collect(provider)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "u0 u1 u2 "
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 10
    body = upstream.requests[0].body
    assert body is not None
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.anyio
async def test_completions_and_embeddings(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    req = CompletionRequest.model_validate({"model": "m", "prompt": PROMPT})
    done = await provider.completion(req, CTX)
    assert done.choices[0].text == "u0 u1 u2 "
    streamed = [c async for c in provider.completion_stream(req, CTX)]
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "u0 u1 u2 "
    emb = await provider.embed(EmbeddingRequest.model_validate({"model": "m", "input": "x"}), CTX)
    assert emb.data[0].embedding == [0.25, -0.5, 1.0]
    assert [r.path for r in upstream.requests] == [
        "/v1/completions",
        "/v1/completions",
        "/v1/embeddings",
    ]


@pytest.mark.anyio
async def test_api_key_from_the_environment(
    upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTY_UPSTREAM_KEY", "sk-test-upstream")
    p = _provider(upstream.base_url, api_key_env="FAULTY_UPSTREAM_KEY")
    await p.start()
    try:
        await p.chat(_chat(), CTX)
        assert await p.check_health()
    finally:
        await p.aclose()
    assert all(r.headers["authorization"] == "Bearer sk-test-upstream" for r in upstream.requests)
    assert upstream.health_checks == 1


@pytest.mark.anyio
async def test_missing_api_key_is_a_clear_start_error(
    upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAULTY_UPSTREAM_KEY", raising=False)
    p = _provider(upstream.base_url, api_key_env="FAULTY_UPSTREAM_KEY")
    with pytest.raises(ValueError, match="FAULTY_UPSTREAM_KEY"):
        await p.start()


@pytest.mark.anyio
async def test_stream_connections_are_reused(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    before = upstream.connections_total
    for _ in range(3):
        await _collect(provider)
    # The body is read to its end after [DONE], so the pooled connection is reused.
    assert upstream.connections_total - before <= 1


# -- upstream errors ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_server_error_is_retryable_and_never_echoes_the_body(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream, stream: bool
) -> None:
    echo = f'{{"error": {{"message": "bad prompt: {PROMPT}", "code": "boom"}}}}'.encode()
    upstream.script(error(500, body=echo))
    with pytest.raises(UpstreamError) as info:
        await _call(provider, stream)
    exc = info.value
    assert type(exc) is UpstreamError
    assert exc.retryable
    assert exc.upstream_status == 500
    assert exc.status_code == 502
    assert "tangerine" not in str(exc.to_body())
    assert "tangerine" not in exc.message
    assert "retry-after" not in exc.headers


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_429_carries_retry_after_to_the_client(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream, stream: bool
) -> None:
    upstream.script(rate_limited("2.5"))
    with pytest.raises(UpstreamRateLimitedError) as info:
        await _call(provider, stream)
    exc = info.value
    assert exc.retryable
    assert exc.retry_after == 2.5
    assert exc.status_code == 429
    assert exc.code == "upstream_rate_limited"
    assert exc.headers == {"retry-after": "3"}


@pytest.mark.anyio
async def test_retry_after_ms_and_http_date(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(
        error(503, headers=(("retry-after-ms", "250"), ("retry-after", "9"))),
        error(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
    )
    with pytest.raises(UpstreamError) as info:
        await provider.chat(_chat(), CTX)
    # The millisecond form wins; the client is told whole seconds, at least one.
    assert info.value.retry_after == 0.25
    assert info.value.headers == {"retry-after": "1"}
    with pytest.raises(UpstreamError) as info:
        await provider.chat(_chat(), CTX)
    assert info.value.retry_after is None
    assert "retry-after" not in info.value.headers


@pytest.mark.anyio
async def test_400_is_the_callers_error_with_only_safe_fields(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    body = (
        '{"error": {"message": "' + PROMPT + '", "code": "context_length_exceeded", '
        '"param": "' + PROMPT + '"}}'
    ).encode()
    upstream.script(error(400, body=body))
    with pytest.raises(BadRequestError) as info:
        await provider.chat(_chat(), CTX)
    exc = info.value
    assert not isinstance(exc, UpstreamError)
    assert exc.code == "context_length_exceeded"
    assert exc.param is None
    assert "tangerine" not in str(exc.to_body())


@pytest.mark.anyio
async def test_error_event_mid_stream(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    # An upstream that reports a failure inside a 200 stream (vLLM does this); its
    # message may quote the prompt and must not be passed on.
    echo = ('{"error": {"message": "' + PROMPT + '", "code": "oom"}}').encode()
    upstream.script(ok(error_event_after=2, body=echo))
    got: list[ChatCompletionChunk] = []
    with pytest.raises(UpstreamError) as info:
        await _read_into(provider, got)
    assert len(got) == 2
    assert info.value.code == "upstream_error"
    assert info.value.upstream_status == 502
    assert "tangerine" not in str(info.value.to_body())


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_json(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream, stream: bool
) -> None:
    upstream.script(malformed())
    with pytest.raises(UpstreamError) as info:
        await _call(provider, stream)
    assert info.value.code == "upstream_malformed"
    assert info.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_reset_before_the_answer(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream, stream: bool
) -> None:
    upstream.script(reset(after=0))
    with pytest.raises(UpstreamError) as info:
        await _call(provider, stream)
    assert info.value.retryable
    assert info.value.status_code == 502
    # The adapter still works afterwards (the broken connection left the pool).
    assert (await provider.chat(_chat(), CTX)).choices


@pytest.mark.anyio
async def test_reset_mid_stream_after_chunks_were_yielded(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(reset(after=2))
    got: list[ChatCompletionChunk] = []
    with pytest.raises(UpstreamError):
        await _read_into(provider, got)
    assert len(got) == 2


@pytest.mark.anyio
async def test_stream_without_done_was_cut_off(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(ok(omit_done=True))
    with pytest.raises(UpstreamError) as info:
        await _collect(provider)
    assert info.value.retryable


@pytest.mark.anyio
async def test_unreachable_upstream() -> None:
    p = _provider("http://127.0.0.1:9/v1")  # discard port: nothing listens
    await p.start()
    try:
        with pytest.raises(UpstreamError) as info:
            await p.chat(_chat(), CTX)
        assert info.value.code == "upstream_unreachable"
        assert info.value.retryable
        assert not await p.check_health()
    finally:
        await p.aclose()


# -- timeouts ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_connect_timeout(stream: bool) -> None:
    with blackhole_listener() as port:
        p = _provider(f"http://127.0.0.1:{port}/v1", connect=0.3, first_token=5, total=10)
        await p.start()
        try:
            began = time.monotonic()
            with pytest.raises(UpstreamTimeoutError) as info:
                await _call(p, stream)
            elapsed = time.monotonic() - began
        finally:
            await p.aclose()
    assert info.value.retryable
    assert "connecting" in info.value.message
    assert 0.25 < elapsed < 1.5


@pytest.mark.anyio
async def test_first_token_timeout_is_retryable_and_closes_the_connection(
    upstream: FaultyUpstream,
) -> None:
    p = _provider(upstream.base_url, first_token=0.4, total=5)
    await p.start()
    try:
        # Headers arrive at once, the first event never does.
        upstream.script(ok(first_chunk_delay_s=30))
        began = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await _collect(p)
        elapsed = time.monotonic() - began
    finally:
        await p.aclose()
    assert info.value.retryable
    assert "start answering" in info.value.message
    assert 0.35 < elapsed < 1.5
    assert upstream.wait_until(_settled, 3)
    assert upstream.requests[0].outcome == "aborted"


@pytest.mark.anyio
async def test_first_token_timeout_counts_from_the_request_not_each_read(
    upstream: FaultyUpstream,
) -> None:
    p = _provider(upstream.base_url, first_token=0.6, total=5)
    await p.start()
    try:
        # 0.4 s to the head, then 0.4 s to the first event: each read is within the
        # limit, the first token is not.
        upstream.script(slow(0.4, first_chunk_delay_s=0.4))
        with pytest.raises(UpstreamTimeoutError):
            await _collect(p)
    finally:
        await p.aclose()


@pytest.mark.anyio
async def test_hang_hits_the_total_timeout_for_json(upstream: FaultyUpstream) -> None:
    # first_token does not apply to a JSON answer (it arrives whole after generation)...
    p = _provider(upstream.base_url, first_token=0.2, total=0.8)
    await p.start()
    try:
        upstream.script(slow(0.4))
        assert (await p.chat(_chat(), CTX)).choices
        # ... the total does, and is not retried (the budget for the request is spent).
        upstream.script(hang())
        began = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await p.chat(_chat(), CTX)
        elapsed = time.monotonic() - began
    finally:
        await p.aclose()
    assert not info.value.retryable
    assert info.value.status_code == 504
    assert 0.7 < elapsed < 1.6
    assert upstream.wait_until(_settled, 3)
    assert upstream.requests[-1].outcome == "aborted"


@pytest.mark.anyio
async def test_slow_drip_hits_the_total_timeout(upstream: FaultyUpstream) -> None:
    # Every event comes well within first_token, but the whole stream takes too long.
    p = _provider(upstream.base_url, first_token=1.0, total=1.0)
    await p.start()
    try:
        upstream.script(drip(0.3, chunks=20))
        got: list[ChatCompletionChunk] = []
        began = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await _read_into(p, got)
        elapsed = time.monotonic() - began
    finally:
        await p.aclose()
    assert not info.value.retryable
    assert 2 <= len(got) <= 5
    assert 0.9 < elapsed < 1.6
    assert upstream.wait_until(_settled, 3)
    assert upstream.requests[0].outcome == "aborted"


@pytest.mark.anyio
async def test_slow_drip_within_limits_completes(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(drip(0.05, chunks=6))
    chunks = await _collect(provider)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 6


# -- cancellation and connection limits -------------------------------------------------


@pytest.mark.anyio
async def test_closing_a_stream_early_closes_the_upstream_connection(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(drip(0.2, chunks=50))
    stream = provider.chat_stream(_chat(stream=True), CTX)
    assert await anext(stream)
    await stream.aclose()
    assert upstream.wait_until(_settled, 2)
    assert upstream.requests[0].outcome == "aborted"


@pytest.mark.anyio
async def test_cancelling_a_json_call_closes_the_upstream_connection(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(hang())
    with anyio.move_on_after(0.3):
        await provider.chat(_chat(), CTX)
    assert upstream.wait_until(_settled, 2)
    assert upstream.requests[0].outcome == "aborted"


@pytest.mark.anyio
async def test_cancelling_a_stream_mid_read_closes_the_upstream_connection(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(drip(5, chunks=5))
    stream = provider.chat_stream(_chat(stream=True), CTX)
    assert await anext(stream)
    with anyio.move_on_after(0.3):
        await anext(stream)
    await stream.aclose()
    assert upstream.wait_until(_settled, 2)
    assert upstream.requests[0].outcome == "aborted"


@pytest.mark.anyio
async def test_max_concurrency_bounds_connections_and_busy_is_its_own_error(
    upstream: FaultyUpstream,
) -> None:
    # connect doubles as the wait for a free connection.
    p = _provider(upstream.base_url, connect=0.3, total=5, max_concurrency=2)
    await p.start()
    outcomes: list[str] = []

    busy: list[DeploymentBusyError] = []

    async def one() -> None:
        try:
            await p.chat(_chat(), CTX)
            outcomes.append("ok")
        except DeploymentBusyError as exc:
            busy.append(exc)
            outcomes.append("busy")

    try:
        upstream.set_default(slow(0.8))
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
    finally:
        await p.aclose()
    assert sorted(outcomes) == ["busy", "ok", "ok"]
    assert busy[0].retryable
    assert busy[0].status_code == 503
    assert busy[0].headers == {"retry-after": "1"}
    assert upstream.peak_active == 2


@pytest.mark.anyio
async def test_health_probe_has_its_own_connection(upstream: FaultyUpstream) -> None:
    p = _provider(upstream.base_url, connect=0.3, total=5, max_concurrency=1)
    await p.start()
    try:
        upstream.set_default(slow(1.0))
        async with anyio.create_task_group() as tg:
            tg.start_soon(p.chat, _chat(), CTX)
            await anyio.sleep(0.1)
            # The only request connection is busy; the probe still gets through.
            assert await p.check_health()
            upstream.set_health(ok=False)
            assert not await p.check_health()
            upstream.set_health(ok=True, delay_s=2)
            began = time.monotonic()
            assert not await p.check_health()
            assert time.monotonic() - began < 1.0
    finally:
        await p.aclose()


@pytest.mark.anyio
async def test_use_before_start_is_a_programming_error(upstream: FaultyUpstream) -> None:
    p = _provider(upstream.base_url)
    with pytest.raises(RuntimeError, match="before start"):
        await p.chat(_chat(), CTX)
    with pytest.raises(RuntimeError, match="before start"):
        await p.check_health()


# -- SSE framing -------------------------------------------------------------------------


def _chunk_json(text: str) -> bytes:
    return (
        '{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", '
        '"choices": [{"index": 0, "delta": {"content": "' + text + '"}, "finish_reason": null}]}'
    ).encode()


@pytest.mark.anyio
async def test_sse_framing_variants(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    whole = _chunk_json("b")
    cut = whole.index(b'"choices"')
    upstream.script(
        ok(
            raw=(
                (0, b": comment lines are keep-alives\n\n"),
                # No space after the colon; CRLF line ends; fields we do not use.
                (0, b"id: 7\r\nretry: 1000\r\ndata:" + _chunk_json("a") + b"\r\n\r\n"),
                # One event split over two data lines (joined with a newline: still JSON),
                # and over two network writes.
                (0, b"data: " + whole[:cut] + b"\n"),
                (0.05, b"data: " + whole[cut:] + b"\n\n"),
                (0, b"data: [DONE]\n\n"),
            )
        )
    )
    chunks = await _collect(provider)
    assert [c.choices[0].delta.content for c in chunks] == ["a", "b"]


@pytest.mark.anyio
async def test_keepalive_comments_do_not_count_as_the_first_token(
    upstream: FaultyUpstream,
) -> None:
    # A proxy that sends ": ping" every 0.2 s keeps the socket busy but sends no token:
    # the first-token limit must still fire (a per-read timeout would never).
    p = _provider(upstream.base_url, first_token=0.6, total=5)
    await p.start()
    try:
        upstream.script(ok(raw=tuple((0.2, b": ping\n\n") for _ in range(25))))
        began = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await _collect(p)
        elapsed = time.monotonic() - began
    finally:
        await p.aclose()
    assert info.value.retryable
    assert 0.55 < elapsed < 1.5
    assert upstream.wait_until(_settled, 3)
    assert upstream.requests[0].outcome == "aborted"


@pytest.mark.anyio
async def test_event_named_error_is_an_upstream_error(
    provider: OpenAICompatibleProvider, upstream: FaultyUpstream
) -> None:
    upstream.script(
        ok(raw=((0, b"event: error\ndata: " + PROMPT.encode() + b"\n\n"),)),
    )
    with pytest.raises(UpstreamError) as info:
        await _collect(provider)
    assert PROMPT not in str(info.value.to_body())


# -- one client, many callers -----------------------------------------------------------


@pytest.mark.anyio
async def test_an_upstream_cookie_never_rides_along_on_the_next_request(
    upstream: FaultyUpstream, provider: OpenAICompatibleProvider
) -> None:
    # The same pooled client serves every caller: a cookie set in the answer to one
    # caller must not be sent with another caller's request.
    upstream.script(ok(headers=(("set-cookie", "session=caller-one; Path=/"),)), ok())
    await provider.chat(_chat(), CTX)
    await provider.chat(_chat(), CTX)
    assert len(upstream.requests) == 2
    assert "cookie" not in upstream.requests[1].headers
