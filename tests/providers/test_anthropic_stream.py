"""Streaming through the anthropic adapter: SSE events → OpenAI chunks, errors, deadlines."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import orjson
import pytest

from airlock.errors import UnsupportedParameterError, UpstreamError, UpstreamTimeoutError
from airlock.protocol.responses import ChatCompletionChunk
from tests.providers.fake_anthropic import (
    API_KEY,
    CTX,
    KEY_ENV,
    CutOff,
    Error,
    FakeAnthropic,
    Stall,
    StreamError,
    Text,
    ToolUse,
    open_provider,
    request,
    stream,
)
from tests.support.spec import assert_valid

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    server.reset()
    monkeypatch.setenv(KEY_ENV, API_KEY)
    return server


async def drain(
    gen: AsyncGenerator[ChatCompletionChunk, None], into: list[ChatCompletionChunk]
) -> None:
    """Collect chunks into ``into`` until the stream ends or fails."""
    try:
        async for chunk in gen:
            into.append(chunk)
    finally:
        await gen.aclose()


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def check_shape(chunks: list[ChatCompletionChunk]) -> None:
    """Role first, one finish_reason just before a usage-only chunk, same id throughout."""
    for chunk in chunks:
        assert_valid(chunk.model_dump(mode="json"), "CreateChatCompletionStreamResponse")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [chunks[-2]]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-msg_")


async def test_text_stream(fake: FakeAnthropic) -> None:
    fake.push(Text("Streaming works one word at a time."))
    async with open_provider(fake) as p:
        chunks = await stream(
            p,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Go"},
            ],
        )
    check_shape(chunks)
    assert content_of(chunks) == "Streaming works one word at a time."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 7
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 7
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert fake.last["stream"] is True
    assert fake.last["system"] == [{"type": "text", "text": "Be brief."}]
    assert fake.requests[-1].headers["accept"] == "text/event-stream"


async def test_stream_stop_reasons(fake: FakeAnthropic) -> None:
    fake.push(Text("a b c d e f g"), Text("keep this STOP drop this"))
    async with open_provider(fake) as p:
        truncated = await stream(p, max_tokens=3)
        stopped = await stream(p, stop="STOP")
    assert content_of(truncated) == "a b c"
    assert truncated[-2].choices[0].finish_reason == "length"
    assert content_of(stopped) == "keep this "
    assert stopped[-2].choices[0].finish_reason == "stop"


async def test_tool_call_deltas_reassemble_to_valid_json(fake: FakeAnthropic) -> None:
    first = {"city": "Paris", "details": {"days": [1, 2, 3], "note": 'quote " and ünïcode'}}
    second = {"city": "Oslo"}
    fake.push(ToolUse([("get_weather", first), ("get_weather", second)], text="Let me look."))
    async with open_provider(fake) as p:
        chunks = await stream(p, tools=[WEATHER])
    check_shape(chunks)
    assert content_of(chunks) == "Let me look."
    calls: dict[int, dict[str, Any]] = {}
    fragments = 0
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if delta.index not in calls:
                # The first delta of a call carries its id, type and name.
                assert delta.id is not None
                assert delta.type == "function"
                assert delta.function is not None
                assert delta.function.name == "get_weather"
                calls[delta.index] = {"id": delta.id, "args": delta.function.arguments or ""}
            else:
                assert delta.id is None
                assert delta.function is not None
                assert delta.function.name is None
                calls[delta.index]["args"] += delta.function.arguments or ""
                fragments += 1
    assert sorted(calls) == [0, 1]
    assert orjson.loads(calls[0]["args"]) == first
    assert orjson.loads(calls[1]["args"]) == second
    assert fragments > 4  # really streamed in pieces
    assert calls[0]["id"] != calls[1]["id"]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


async def test_streamed_json_object_mode(fake: FakeAnthropic) -> None:
    answer = {"summary": "All good", "items": [1, 2]}
    fake.push(ToolUse([("json_response", answer)], text="ignored preamble"))
    async with open_provider(fake) as p:
        chunks = await stream(p, response_format={"type": "json_object"})
    check_shape(chunks)
    assert orjson.loads(content_of(chunks)) == answer
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 2
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(not c.choices or c.choices[0].delta.tool_calls is None for c in chunks)


async def test_streamed_json_schema_mode_wrapped(fake: FakeAnthropic) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "tags",
            "schema": {"type": "array", "items": {"type": "string"}},
            "strict": True,
        },
    }
    async with open_provider(fake) as p:
        chunks = await stream(p, response_format=fmt)
    check_shape(chunks)
    assert orjson.loads(content_of(chunks)) == ["text"]


async def test_streamed_strict_schema_violation_fails_at_the_end(fake: FakeAnthropic) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "num", "schema": schema, "strict": True}}
    fake.push(ToolUse([("num", {"n": "not a number"})]))
    got: list[ChatCompletionChunk] = []
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await drain(p.chat_stream(request(stream=True, response_format=fmt), CTX), got)
    assert info.value.code == "upstream_invalid_json"
    assert got  # content was streamed before the final check


async def test_error_event_before_content_fails_the_first_chunk(fake: FakeAnthropic) -> None:
    fake.push(StreamError("overloaded_error", "Overloaded; your prompt was: Jane Roe"))
    async with open_provider(fake) as p:
        gen = p.chat_stream(request(stream=True), CTX)
        with pytest.raises(UpstreamError) as info:
            await anext(gen)
        await gen.aclose()
    err = info.value
    assert err.code == "upstream_overloaded"
    assert err.retryable  # nothing was sent yet: the gateway may retry elsewhere
    assert err.upstream_status == 529
    assert "Jane" not in f"{err} {err.to_body()}"


async def test_error_event_mid_stream(fake: FakeAnthropic) -> None:
    fake.push(StreamError("api_error", "Internal error near 'Jane Roe'", after_text="Partial"))
    got: list[ChatCompletionChunk] = []
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await drain(p.chat_stream(request(stream=True), CTX), got)
    assert content_of(got) == "Partial"
    assert info.value.upstream_status == 500
    assert "Jane" not in str(info.value)


async def test_http_error_status_on_a_stream_request(fake: FakeAnthropic) -> None:
    fake.push(
        Error(429, "rate_limit_error", "Jane Roe is over the limit", headers={"retry-after": "3"})
    )
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await stream(p)
    assert info.value.code == "upstream_rate_limited"
    assert info.value.retry_after == 3
    assert "Jane" not in str(info.value)


async def test_stream_cut_off_before_message_stop(fake: FakeAnthropic) -> None:
    fake.push(CutOff())
    got: list[ChatCompletionChunk] = []
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await drain(p.chat_stream(request(stream=True), CTX), got)
    assert content_of(got) == "partial answer"
    assert info.value.retryable
    assert "RemoteProtocolError" in info.value.message


async def test_pings_do_not_count_as_the_first_token(fake: FakeAnthropic) -> None:
    fake.push(Stall(3.0, mid_stream=True, pings=True, before_text=True))
    async with open_provider(fake, first_token=0.4, total=10) as p:
        gen = p.chat_stream(request(stream=True), CTX)
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await anext(gen)
        await gen.aclose()
    assert 0.3 < time.monotonic() - started < 2.0
    assert info.value.retryable  # nothing was sent: another deployment may answer
    assert "did not start answering in time" in info.value.message


async def test_silence_after_the_first_token_hits_the_read_timeout(fake: FakeAnthropic) -> None:
    fake.push(Stall(3.0, mid_stream=True))
    got: list[ChatCompletionChunk] = []
    async with open_provider(fake, first_token=0.3, total=10) as p:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError):
            await drain(p.chat_stream(request(stream=True), CTX), got)
    assert time.monotonic() - started < 2.0
    assert content_of(got) == "Thinking"


async def test_pinging_upstream_hits_the_total_deadline(fake: FakeAnthropic) -> None:
    fake.push(Stall(3.0, mid_stream=True, pings=True))
    async with open_provider(fake, first_token=1.0, total=0.5) as p:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await stream(p)
    assert time.monotonic() - started < 2.0
    assert not info.value.retryable
    assert "did not finish in time" in info.value.message


async def test_bad_request_is_refused_before_any_upstream_call(fake: FakeAnthropic) -> None:
    async with open_provider(fake) as p:
        gen = p.chat_stream(request(stream=True, n=3), CTX)
        with pytest.raises(UnsupportedParameterError) as info:
            await anext(gen)
    assert info.value.param == "n"
    assert not fake.requests
