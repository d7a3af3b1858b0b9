"""The anthropic adapter against a strict loopback Anthropic: requests, replies, tools, JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from airlock.errors import BadRequestError, UnsupportedParameterError, UpstreamError
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.providers.anthropic import AnthropicProvider
from tests.providers.fake_anthropic import (
    API_KEY,
    CTX,
    KEY_ENV,
    UPSTREAM_MODEL,
    FakeAnthropic,
    Text,
    ToolUse,
    chat,
    deployment,
    open_provider,
    request,
)
from tests.support.spec import assert_valid

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


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


async def test_plain_chat_maps_reply_usage_and_headers(fake: FakeAnthropic) -> None:
    async with open_provider(fake) as p:
        out = await chat(p, messages=[{"role": "user", "content": "Hi there"}])
    msg = out.choices[0].message
    assert msg.content == "Hello from the fake Claude. How can I help you today?"
    assert msg.tool_calls is None
    assert out.choices[0].finish_reason == "stop"
    assert out.id.startswith("chatcmpl-msg_")
    assert out.usage is not None
    assert out.usage.prompt_tokens > 0
    assert out.usage.completion_tokens == 11
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert_valid(out.model_dump(mode="json"), "CreateChatCompletionResponse")
    sent = fake.requests[-1]
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": UPSTREAM_MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
    }


async def test_system_and_developer_messages_become_the_system_prompt(fake: FakeAnthropic) -> None:
    async with open_provider(fake) as p:
        await chat(
            p,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hello"},
                {"role": "system", "content": "Never mention cats."},
            ],
        )
    assert fake.last["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Answer in French."},
        {"type": "text", "text": "Never mention cats."},
    ]
    assert [m["role"] for m in fake.last["messages"]] == ["user"]


async def test_multi_turn_merges_consecutive_roles_and_drops_empty_turns(
    fake: FakeAnthropic,
) -> None:
    async with open_provider(fake) as p:
        out = await chat(
            p,
            messages=[
                {"role": "user", "content": "First question."},
                {"role": "user", "content": [{"type": "text", "text": "More context."}]},
                {"role": "assistant", "content": "An answer."},
                {"role": "assistant", "content": "  "},
                {"role": "user", "content": "Follow-up."},
            ],
        )
    assert out.choices[0].message.content
    assert fake.last["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "First question."},
                {"type": "text", "text": "More context."},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "An answer."}]},
        {"role": "user", "content": [{"type": "text", "text": "Follow-up."}]},
    ]


async def test_final_assistant_prefill_loses_trailing_whitespace(fake: FakeAnthropic) -> None:
    history = [
        {"role": "user", "content": "Finish the sentence."},
        {"role": "assistant", "content": "The sky is "},
    ]
    async with open_provider(fake) as p:
        await chat(p, messages=history)
    assert fake.last["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The sky is"}],
    }


async def test_only_empty_messages_is_a_clear_400(fake: FakeAnthropic) -> None:
    async with open_provider(fake) as p:
        with pytest.raises(BadRequestError, match="non-empty") as info:
            await chat(
                p, messages=[{"role": "system", "content": "x"}, {"role": "user", "content": ""}]
            )
    assert info.value.param == "messages"
    assert not fake.requests


async def test_sampling_parameters_and_stop_sequences(fake: FakeAnthropic) -> None:
    fake.push(Text("The answer is 42 END and more text"))
    async with open_provider(fake) as p:
        out = await chat(
            p, stop=["END", "STOP", "\n\n"], temperature=1.5, top_p=0.9, max_tokens=50, seed=7
        )
    assert out.choices[0].message.content == "The answer is 42 "
    assert out.choices[0].finish_reason == "stop"
    body = fake.last
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["temperature"] == 1.0  # clamped into Anthropic's 0–1
    assert "top_p" not in body  # recent models refuse both; temperature wins
    assert body["max_tokens"] == 50
    assert "seed" not in body
    async with open_provider(fake) as p:
        await chat(p, top_p=0.9)
    assert fake.last["top_p"] == 0.9


async def test_max_tokens_stop_reason_is_length(fake: FakeAnthropic) -> None:
    fake.push(Text("one two three four five six"))
    async with open_provider(fake) as p:
        out = await chat(p, max_tokens=100, max_completion_tokens=3)
    assert fake.last["max_tokens"] == 3  # max_completion_tokens wins
    assert out.choices[0].message.content == "one two three"
    assert out.choices[0].finish_reason == "length"


async def test_default_max_tokens_option(fake: FakeAnthropic) -> None:
    async with open_provider(fake, options={"default_max_tokens": 256}) as p:
        await chat(p)
    assert fake.last["max_tokens"] == 256
    with pytest.raises(ValueError, match="default_max_tokens"):
        async with open_provider(fake, options={"default_max_tokens": "lots"}):
            pass


async def test_base_url_with_v1_suffix(fake: FakeAnthropic) -> None:
    dep = deployment(fake).model_copy(update={"base_url": fake.base_url + "/v1/"})
    p = AnthropicProvider(dep, "claude-test")
    await p.start()
    try:
        out = await p.chat(request(), CTX)
    finally:
        await p.aclose()
    assert out.choices[0].message.content


async def test_images_map_to_image_blocks(fake: FakeAnthropic) -> None:
    parts = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    async with open_provider(fake) as p:
        await chat(p, messages=[{"role": "user", "content": parts}])
    content = fake.last["messages"][0]["content"]
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert content[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://host/x.png"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            "messages[0].content[0]",
        ),
        ({"type": "file", "file": {"file_id": "f1"}}, "messages[0].content[0]"),
    ],
)
async def test_unsupported_content_parts_are_clear_400s(
    fake: FakeAnthropic, part: dict[str, Any], param: str
) -> None:
    async with open_provider(fake) as p:
        with pytest.raises(UnsupportedParameterError) as info:
            await chat(p, messages=[{"role": "user", "content": [part]}])
    assert info.value.status_code == 400
    assert info.value.param == param
    assert "AAAA" not in info.value.message
    assert not fake.requests


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2, "logprobs": True}, "logprobs"),
    ],
)
async def test_unsupported_parameters(
    fake: FakeAnthropic, body: dict[str, Any], param: str
) -> None:
    async with open_provider(fake) as p:
        with pytest.raises(UnsupportedParameterError) as info:
            await chat(p, **body)
    assert info.value.param == param


async def test_completions_and_embeddings_are_refused(fake: FakeAnthropic) -> None:
    async with open_provider(fake) as p:
        assert not p.capabilities.completions
        assert not p.capabilities.embeddings
        with pytest.raises(UnsupportedParameterError, match="text completions"):
            await p.completion(CompletionRequest(model="claude", prompt="x"), CTX)
        with pytest.raises(UnsupportedParameterError, match="embeddings"):
            await p.embed(EmbeddingRequest(model="claude", input="x"), CTX)


# --- tools -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            {"type": "tool", "name": "get_time"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
async def test_tool_choice_variants(
    fake: FakeAnthropic, tool_choice: Any, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"tools": [WEATHER, TIME]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    async with open_provider(fake) as p:
        out = await chat(p, **body)
    assert fake.last.get("tool_choice") == expected
    assert fake.last["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER["function"]["parameters"],
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    choice = out.choices[0]
    if expected and expected["type"] in ("any", "tool"):
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls
        assert calls is not None
        assert len(calls) == 1
        name = expected.get("name", "get_weather")
        assert calls[0].function.name == name
        assert calls[0].id.startswith("toolu_")
        args = orjson.loads(calls[0].function.arguments)
        assert args == ({"city": "text", "unit": "c"} if name == "get_weather" else {})
    else:
        assert choice.finish_reason == "stop"
        assert choice.message.tool_calls is None


async def test_text_and_parallel_tool_calls_in_one_reply(fake: FakeAnthropic) -> None:
    fake.push(
        ToolUse(
            [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})],
            text="Checking.",
        )
    )
    async with open_provider(fake) as p:
        out = await chat(p, tools=[WEATHER])
    msg = out.choices[0].message
    assert msg.content == "Checking."
    assert msg.tool_calls is not None
    assert [orjson.loads(c.function.arguments)["city"] for c in msg.tool_calls] == ["Paris", "Oslo"]
    assert out.choices[0].finish_reason == "tool_calls"
    assert_valid(out.model_dump(mode="json"), "CreateChatCompletionResponse")


async def test_tool_result_round_trip(fake: FakeAnthropic) -> None:
    history = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call.2:x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
        {
            "role": "tool",
            "tool_call_id": "call.2:x",
            "content": [{"type": "text", "text": "3C snow"}],
        },
        {"role": "user", "content": "Summarise please."},
    ]
    fake.push(Text("Paris is warm, Oslo is cold."))
    async with open_provider(fake) as p:
        out = await chat(p, messages=history, tools=[WEATHER])
    assert out.choices[0].message.content == "Paris is warm, Oslo is cold."
    assert fake.last["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "call_2_x", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C sunny"},
                {"type": "tool_result", "tool_use_id": "call_2_x", "content": "3C snow"},
                {"type": "text", "text": "Summarise please."},
            ],
        },
    ]


async def test_tool_results_are_moved_before_text_in_their_turn(fake: FakeAnthropic) -> None:
    history = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "user", "content": "Hurry up."},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    async with open_provider(fake) as p:
        await chat(p, messages=history, tools=[WEATHER])
    assert [b["type"] for b in fake.last["messages"][2]["content"]] == ["tool_result", "text"]


async def test_tool_call_arguments_must_be_an_object(fake: FakeAnthropic) -> None:
    history = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "[1, 2"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    async with open_provider(fake) as p:
        with pytest.raises(BadRequestError) as info:
            await chat(p, messages=history, tools=[WEATHER])
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


async def test_non_object_tool_parameters_are_refused(fake: FakeAnthropic) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
    async with open_provider(fake) as p:
        with pytest.raises(UnsupportedParameterError) as info:
            await chat(p, tools=[tool])
    assert info.value.param == "tools[0].function.parameters"


# --- JSON mode -----------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


async def test_json_object_mode_uses_a_forced_tool(fake: FakeAnthropic) -> None:
    fake.push(ToolUse([("json_response", {"city": "Paris", "temp": 18})], text="Here you go:"))
    async with open_provider(fake) as p:
        out = await chat(p, response_format={"type": "json_object"})
    choice = out.choices[0]
    assert orjson.loads(choice.message.content or "") == {"city": "Paris", "temp": 18}
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert fake.last["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert fake.last["tools"][0]["input_schema"] == {"type": "object"}


async def test_json_schema_mode_returns_schema_shaped_content(fake: FakeAnthropic) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    async with open_provider(fake) as p:
        out = await chat(p, response_format=fmt)
    assert orjson.loads(out.choices[0].message.content or "") == {"name": "text", "age": 1}
    assert fake.last["tools"] == [
        {
            "name": "person",
            "description": "Give your complete answer by calling this tool.",
            "input_schema": PERSON,
        }
    ]
    assert fake.last["tool_choice"] == {"type": "tool", "name": "person"}


async def test_strict_json_schema_violation_is_an_upstream_error(fake: FakeAnthropic) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    fake.push(ToolUse([("person", {"name": "Ann Secret", "age": "old"})]))
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await chat(p, response_format=fmt)
    assert info.value.code == "upstream_invalid_json"
    assert info.value.retryable
    assert "Secret" not in info.value.message


async def test_non_object_json_schema_is_wrapped_and_unwrapped(fake: FakeAnthropic) -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    fmt = {"type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}}
    fake.push(ToolUse([("numbers", {"value": [1, 2, 3]})]))
    async with open_provider(fake) as p:
        out = await chat(p, response_format=fmt)
    assert out.choices[0].message.content == "[1,2,3]"
    assert fake.last["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
    }


async def test_json_mode_with_tools_lets_the_model_pick(fake: FakeAnthropic) -> None:
    fmt = {"type": "json_object"}
    fake.push(
        ToolUse([("get_weather", {"city": "Rome"})]), ToolUse([("json_response", {"ok": True})])
    )
    async with open_provider(fake) as p:
        called = await chat(p, response_format=fmt, tools=[WEATHER])
        answered = await chat(p, response_format=fmt, tools=[WEATHER])
        named = await chat(
            p,
            response_format=fmt,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert called.choices[0].finish_reason == "tool_calls"
    assert called.choices[0].message.tool_calls is not None
    assert answered.choices[0].finish_reason == "stop"
    assert answered.choices[0].message.content == '{"ok":true}'
    assert fake.requests[0].body["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in fake.requests[0].body["tools"]] == ["get_weather", "json_response"]
    # A named tool choice fixes the answer: no JSON tool is added.
    assert [t["name"] for t in fake.last["tools"]] == ["get_weather"]
    assert named.choices[0].finish_reason == "tool_calls"


async def test_json_mode_without_a_json_answer_is_an_error(fake: FakeAnthropic) -> None:
    fake.push(Text("I refuse to answer in JSON"))
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await chat(p, response_format={"type": "json_object"})
    assert info.value.code == "upstream_invalid_json"


async def test_json_schema_name_clashing_with_a_tool(fake: FakeAnthropic) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "get_weather", "schema": PERSON}}
    async with open_provider(fake) as p:
        with pytest.raises(BadRequestError) as info:
            await chat(p, response_format=fmt, tools=[WEATHER])
    assert info.value.param == "response_format.json_schema.name"
