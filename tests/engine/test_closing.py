"""Budget-aware closing: constrained output always parses within max_tokens, and ends at
"length" only when even the shortest completion could never fit."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from airlock.engine.closing import WRAP_UP_TOKENS, Closer
from airlock.engine.gbnf import Grammar
from airlock.engine.json_grammar import GrammarBuilder, json_object_grammar
from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.llama_model import LlamaModel
from airlock.engine.types import (
    ChatJob,
    ChatTurn,
    JsonObjectFormat,
    JsonSchemaFormat,
    SamplingParams,
    ToolChoice,
    ToolSpec,
)
from tests.engine.helpers import run

# Greedy SmolLM2 answers this with a username of digits that never ends (measured: it
# runs into any max_tokens below 200 without closing on its own).
RAMBLING = (
    ChatTurn("system", "You answer in JSON."),
    ChatTurn("user", "JSON please: a user profile with username and email."),
)
STORY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "story": {"type": "string"},
        "moral": {"type": "string"},
        "n": {"type": "integer"},
    },
    "required": ["story", "moral", "n"],
    "additionalProperties": False,
}


def _closer(model: LlamaModel, grammar: str) -> Closer:
    return Closer(
        Grammar(grammar), piece=model.piece, tokenize=lambda t: model.tokenize(t, add_bos=False)
    )


def _schema_grammar(schema: dict[str, Any]) -> str:
    builder = GrammarBuilder()
    return builder.render(builder.add_schema(schema, prefix="s", where="x", param="x"))


def _write(model: LlamaModel, closer: Closer, text: str) -> None:
    for token in model.tokenize(text, add_bos=False):
        closer.commit(token)


def test_closer_measures_the_cost_of_closing(llama_model: LlamaModel) -> None:
    closer = _closer(llama_model, json_object_grammar())
    _write(llama_model, closer, '{"a": [{"b": "xyz')
    close = llama_model.tokenize('"}]}', add_bos=False)
    letter = llama_model.tokenize("q", add_bos=False)[0]
    # Another letter keeps the string open: it fits only if the closing tokens still do.
    assert closer.fits(letter, len(close) + 1)
    assert not closer.fits(letter, len(close))
    assert not closer.wrapping_up(len(close) + WRAP_UP_TOKENS)
    assert closer.wrapping_up(len(close) + WRAP_UP_TOKENS - 1)
    first = closer.start_forcing(len(close))
    assert first == close[0]
    assert closer.start_forcing(len(close) - 1) is None
    comma = llama_model.tokenize(",", add_bos=False)[0]
    _write(llama_model, closer, '"')
    assert closer.opens(comma)
    assert not closer.opens(llama_model.tokenize("}", add_bos=False)[0])
    _write(llama_model, closer, "}]}")
    assert closer.complete


def test_closer_follows_schemas(llama_model: LlamaModel) -> None:
    closer = _closer(llama_model, _schema_grammar(STORY))
    _write(llama_model, closer, '{"story": "Once upon a time')
    tokens = llama_model.tokenize('", "moral": "", "n": 0}', add_bos=False)
    first = closer.start_forcing(len(tokens) + 5)
    assert first is not None
    forced = [first]
    closer.commit(first)
    while (token := closer.next_forced()) is not None:
        forced.append(token)
        closer.commit(token)
    assert closer.complete
    tail = llama_model.detokenize(forced)
    value = json.loads('{"story": "Once upon a time' + tail)
    jsonschema.validate(value, STORY)
    assert len(forced) <= len(tokens)


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8, 13, 21, 34, 55])
def test_json_object_closes_within_any_budget(
    engine: EmbeddedEngine, llama_model: LlamaModel, budget: int
) -> None:
    job = ChatJob(
        RAMBLING,
        SamplingParams(max_tokens=budget, temperature=0.0),
        response_format=JsonObjectFormat(),
    )
    result = run(engine, job)
    smallest = len(llama_model.tokenize("{}", add_bos=False))
    if budget < smallest:
        assert result.finished.finish_reason == "length"
        return
    assert result.finished.finish_reason == "stop"
    assert result.finished.completion_tokens <= budget
    assert isinstance(json.loads(result.text), dict)


def test_the_rambling_prompt_really_rambles(engine: EmbeddedEngine) -> None:
    """Without the budget the model goes on: the closing above is what made it parse."""
    job = ChatJob(
        RAMBLING, SamplingParams(max_tokens=55, temperature=0.0), response_format=JsonObjectFormat()
    )
    result = run(engine, job)
    assert result.finished.completion_tokens == 55
    assert max(len(s) for s in _strings(json.loads(result.text))) > 30


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("budget", [24, 40])
def test_json_schema_closes_with_every_required_member(
    engine: EmbeddedEngine, budget: int, seed: int
) -> None:
    job = ChatJob(
        (ChatTurn("user", "Write a long story about a dragon as JSON: story, moral, n."),),
        SamplingParams(max_tokens=budget, temperature=1.0, seed=seed),
        response_format=JsonSchemaFormat(name="story", schema=STORY),
    )
    result = run(engine, job)
    assert result.finished.finish_reason == "stop"
    assert result.finished.completion_tokens <= budget
    jsonschema.validate(json.loads(result.text), STORY)


def test_length_when_even_closing_cannot_fit(engine: EmbeddedEngine) -> None:
    # The shortest STORY object, {"story":"","moral":"","n":0}, takes well over 4 tokens.
    job = ChatJob(
        (ChatTurn("user", "A story as JSON."),),
        SamplingParams(max_tokens=4, temperature=0.0),
        response_format=JsonSchemaFormat(name="story", schema=STORY),
    )
    result = run(engine, job)
    assert result.finished.finish_reason == "length"
    assert result.finished.completion_tokens == 4


def test_tool_call_arguments_close_within_the_budget(engine: EmbeddedEngine) -> None:
    params: dict[str, Any] = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "lang": {"type": "string"}},
        "required": ["text", "lang"],
    }
    job = ChatJob(
        (ChatTurn("user", "Translate the whole first chapter of Moby Dick into French."),),
        SamplingParams(max_tokens=30, temperature=1.0, seed=3),
        tools=(ToolSpec("translate", "Translate text", params),),
        tool_choice=ToolChoice("required"),
    )
    result = run(engine, job)
    assert result.finished.finish_reason == "tool_calls"
    assert result.finished.completion_tokens <= 30
    assert len(result.calls) >= 1
    for _, name, arguments in result.calls:
        assert name == "translate"
        jsonschema.validate(json.loads(arguments), params)


def test_closer_goes_quiet_when_it_cannot_follow(llama_model: LlamaModel) -> None:
    # Every "a" opens a level that owes a "b" or a "c": 2**n live parses.
    ambiguous = 'root ::= "a" root "b" | "a" root "c" | "d"\n'
    closer = _closer(llama_model, ambiguous)
    _write(llama_model, closer, "a" * 12)
    assert not closer.active
    assert closer.fits(llama_model.tokenize("a", add_bos=False)[0], 1)
    assert closer.start_forcing(100) is None
    # A token the grammar does not allow (llama.cpp would never take it) has the same effect.
    other = _closer(llama_model, json_object_grammar())
    _write(llama_model, other, "[")
    assert not other.active
    assert not other.wrapping_up(1)
