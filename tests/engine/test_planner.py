"""Bad input is refused before any generation, with errors that say what to fix."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.scheduler import JobReport
from airlock.engine.types import (
    ChatJob,
    ChatTurn,
    CompletionJob,
    JsonSchemaFormat,
    SamplingParams,
    ToolChoice,
    ToolSpec,
)
from airlock.errors import (
    BadRequestError,
    ContextLengthExceededError,
    UnsupportedParameterError,
)
from tests.engine.helpers import collect

SECRET = "Patient John Q. Example, SSN 078-05-1120"
TOOL = ToolSpec("lookup", None, {"type": "object", "properties": {"q": {"type": "string"}}})


def _fail(engine: EmbeddedEngine, job: ChatJob | CompletionJob) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        asyncio.run(collect(engine, job))
    error = info.value
    assert error.status_code == 400
    assert SECRET not in error.message  # invariant 1: metadata only
    assert "078-05-1120" not in str(error)
    return error


def _chat(**kwargs: Any) -> ChatJob:
    return ChatJob((ChatTurn("user", SECRET),), **kwargs)


def test_context_overflow_is_refused_before_generating(
    engine: EmbeddedEngine, job_reports: list[JobReport]
) -> None:
    before = len(job_reports)
    long_text = " ".join([SECRET] * 200)
    error = _fail(engine, ChatJob((ChatTurn("user", long_text),), SamplingParams(max_tokens=10)))
    assert isinstance(error, ContextLengthExceededError)
    assert error.code == "context_length_exceeded"
    assert error.context_window == engine.context_window == 2048
    assert error.prompt_tokens > 2048
    assert error.max_new_tokens == 10
    assert len(job_reports) == before  # nothing was queued


def test_prompt_plus_max_tokens_over_the_window_is_refused(engine: EmbeddedEngine) -> None:
    error = _fail(engine, _chat(sampling=SamplingParams(max_tokens=2040)))
    assert isinstance(error, ContextLengthExceededError)
    assert error.prompt_tokens + 2040 > 2048


def test_completion_prompt_overflow(engine: EmbeddedEngine) -> None:
    ids = tuple([100] * 2049)
    error = _fail(engine, CompletionJob(ids, SamplingParams(max_tokens=1)))
    assert isinstance(error, ContextLengthExceededError)


@pytest.mark.parametrize(
    ("schema", "feature"),
    [
        ({"type": "integer", "multipleOf": 2}, "multipleOf"),
        ({"type": "number", "minimum": 0.5}, "minimum"),
        ({"type": "string", "pattern": "^[a-z]+$"}, "pattern"),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "oneOf"),
    ],
)
def test_unsupported_schema_feature(engine: EmbeddedEngine, schema: Any, feature: str) -> None:
    job = _chat(response_format=JsonSchemaFormat("x", schema))
    error = _fail(engine, job)
    assert error.param == "response_format"
    assert feature in error.message


def test_invalid_schema(engine: EmbeddedEngine) -> None:
    error = _fail(engine, _chat(response_format=JsonSchemaFormat("x", {"type": 12})))
    assert error.param == "response_format"
    assert "not a valid JSON Schema" in error.message


def test_unsupported_tool_schema_names_the_tool(engine: EmbeddedEngine) -> None:
    bad = ToolSpec(
        "f", None, {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}
    )
    error = _fail(engine, _chat(tools=(TOOL, bad), tool_choice=ToolChoice("required")))
    assert error.param == "tools"
    assert "tools[1]" in error.message
    assert "multipleOf" in error.message


def test_tool_parameters_must_be_an_object(engine: EmbeddedEngine) -> None:
    bad = ToolSpec("f", None, {"type": "array"})
    error = _fail(engine, _chat(tools=(bad,), tool_choice=ToolChoice("auto")))
    assert error.param == "tools"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tool_choice": ToolChoice("required")}, "tool_choice"),
        ({"tools": (TOOL,), "tool_choice": ToolChoice("function", "missing")}, "tool_choice"),
        ({"tools": (TOOL, TOOL)}, "tools"),
        ({"sampling": SamplingParams(logit_bias={49152: 5.0})}, "logit_bias"),
        ({"sampling": SamplingParams(logit_bias={-1: 5.0})}, "logit_bias"),
        ({"sampling": SamplingParams(max_tokens=0)}, "max_tokens"),
        ({"sampling": SamplingParams(temperature=-0.5)}, "temperature"),
        ({"sampling": SamplingParams(top_p=1.5)}, "top_p"),
    ],
)
def test_bad_chat_parameters(engine: EmbeddedEngine, kwargs: dict[str, Any], param: str) -> None:
    assert _fail(engine, _chat(**kwargs)).param == param


def test_completion_token_ids_must_be_in_the_vocabulary(engine: EmbeddedEngine) -> None:
    error = _fail(engine, CompletionJob((1, 2, engine.vocab_size), SamplingParams(max_tokens=1)))
    assert error.param == "prompt"


def test_suffix_is_unsupported(engine: EmbeddedEngine) -> None:
    error = _fail(engine, CompletionJob("def f(", SamplingParams(max_tokens=1), suffix="):"))
    assert isinstance(error, UnsupportedParameterError)
    assert error.param == "suffix"


def test_tokenizer_access(engine: EmbeddedEngine) -> None:
    ids = engine.tokenize("Hello world")
    assert len(ids) == engine.count_tokens("Hello world") >= 2
    assert engine.detokenize(ids) == "Hello world"
    assert all(0 <= t < engine.vocab_size for t in ids)
    engine.check_logit_bias({ids[0]: 10.0})
    with pytest.raises(BadRequestError) as info:
        engine.check_logit_bias({engine.vocab_size: 1.0})
    assert info.value.param == "logit_bias"
    assert engine.model_id == "smollm2"
