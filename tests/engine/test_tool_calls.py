"""Tool calling with the real model: required, named, auto, parallel, history."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.types import (
    ChatJob,
    ChatTurn,
    JsonObjectFormat,
    SamplingParams,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolChoice,
    ToolSpec,
)
from tests.engine.helpers import Outcome, run

WEATHER_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}
TIME_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 24}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS = (
    ToolSpec("get_weather", "Get the current weather for a city", WEATHER_PARAMS),
    ToolSpec("get_time", "Get the current time in a timezone", TIME_PARAMS),
)
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
QUESTIONS = [
    "What's the weather in Paris?",
    "What time is it in Tokyo?",
    "Is it raining in London right now?",
    "Tell me the weather in Berlin and the time in New York.",
]


def _check_calls(result: Outcome, allowed: set[str]) -> None:
    assert result.finished.finish_reason == "tool_calls"
    assert result.calls
    assert result.text == ""
    for call_id, name, arguments in result.calls:
        assert call_id.startswith("call_")
        assert name in allowed
        jsonschema.validate(json.loads(arguments), SCHEMAS[name])


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("parallel", [True, False])
def test_required_always_yields_valid_calls(
    engine: EmbeddedEngine, question: str, parallel: bool
) -> None:
    job = ChatJob(
        (ChatTurn("user", question),),
        SamplingParams(max_tokens=120, temperature=0.7, seed=11),
        tools=TOOLS,
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=parallel,
    )
    result = run(engine, job)
    _check_calls(result, set(SCHEMAS))
    if not parallel:
        assert len(result.calls) == 1
    assert len({c[0] for c in result.calls}) == len(result.calls)


def test_named_function_is_the_one_called(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (ChatTurn("user", "What's the weather in Paris?"),),
        SamplingParams(max_tokens=120, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("function", "get_time"),
    )
    result = run(engine, job)
    _check_calls(result, {"get_time"})
    assert len(result.calls) == 1


def test_arguments_are_streamed_in_several_deltas(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (ChatTurn("user", "What's the weather in Paris?"),),
        SamplingParams(max_tokens=120, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("function", "get_weather"),
    )
    result = run(engine, job)
    deltas = [e for e in result.events if isinstance(e, ToolCallArgumentsDelta)]
    assert len(deltas) > 3
    assert "".join(d.delta for d in deltas) == result.calls[0][2]


def test_tool_call_cut_by_max_tokens_reports_length(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (ChatTurn("user", "What's the weather in Paris?"),),
        SamplingParams(max_tokens=4, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("required"),
    )
    result = run(engine, job)
    assert result.finished.finish_reason == "length"
    assert result.finished.completion_tokens == 4


def _few_shot() -> tuple[ChatTurn, ...]:
    """Two earlier call/result rounds: the history the template must render."""
    turns: list[ChatTurn] = []
    for city, answer in (("Paris", "18C and sunny"), ("Rome", "25C and clear")):
        call = ToolCall("call_prev" + city, "get_weather", json.dumps({"city": city}))
        turns += [
            ChatTurn("user", f"What's the weather in {city}?"),
            ChatTurn("assistant", None, tool_calls=(call,)),
            ChatTurn("tool", answer, tool_call_id=call.id),
            ChatTurn("assistant", f"It is {answer} in {city}."),
        ]
    return tuple(turns)


def test_auto_calls_a_tool_when_the_history_shows_how(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (*_few_shot(), ChatTurn("user", "What's the weather in Berlin?")),
        SamplingParams(max_tokens=60, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("auto"),
    )
    result = run(engine, job)
    _check_calls(result, set(SCHEMAS))


def test_auto_may_answer_in_text(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (ChatTurn("user", "Write one sentence about friendship."),),
        SamplingParams(max_tokens=20, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("auto"),
    )
    result = run(engine, job)
    assert result.calls == []
    assert result.text.strip()
    assert "<tool" not in result.text
    assert result.finished.finish_reason in ("stop", "length")


def test_tool_result_round_trip_answers_in_text(engine: EmbeddedEngine) -> None:
    call = ToolCall("call_abc", "get_weather", '{"city": "Oslo"}')
    job = ChatJob(
        (
            ChatTurn("user", "What's the weather in Oslo?"),
            ChatTurn("assistant", None, tool_calls=(call,)),
            ChatTurn("tool", "It is -3C and snowing.", tool_call_id="call_abc"),
        ),
        SamplingParams(max_tokens=30, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("none"),
    )
    result = run(engine, job)
    assert result.calls == []
    assert result.text
    assert all(isinstance(e, TextDelta) for e in result.events[:-1])


def test_none_with_tools_never_calls(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (*_few_shot(), ChatTurn("user", "What's the weather in Berlin?")),
        SamplingParams(max_tokens=30, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("none"),
    )
    result = run(engine, job)
    assert result.calls == []
    assert result.finished.finish_reason in ("stop", "length")


def test_auto_with_json_response_format_gives_json_or_calls(engine: EmbeddedEngine) -> None:
    with_history = ChatJob(
        (*_few_shot(), ChatTurn("user", "What's the weather in Berlin?")),
        SamplingParams(max_tokens=60, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("auto"),
        response_format=JsonObjectFormat(),
    )
    _check_calls(run(engine, with_history), set(SCHEMAS))
    plain = ChatJob(
        (ChatTurn("user", "Describe a cat as a JSON object."),),
        SamplingParams(max_tokens=120, temperature=0.0),
        tools=TOOLS,
        tool_choice=ToolChoice("auto"),
        response_format=JsonObjectFormat(),
    )
    result = run(engine, plain)
    if result.calls:
        _check_calls(result, set(SCHEMAS))
    else:
        assert result.text.startswith("{")
        if result.finished.finish_reason == "stop":
            assert isinstance(json.loads(result.text), dict)
