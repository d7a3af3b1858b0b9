"""airlock's reading of its own GBNF grammars agrees with llama.cpp's, and the shortest
completion of every prefix is valid (for llama.cpp and for JSON / JSON Schema)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from airlock.engine.gbnf import Grammar, GrammarSyntaxError, GrammarTrackingError
from airlock.engine.json_grammar import GrammarBuilder, json_object_grammar
from airlock.engine.llama_model import LlamaModel
from airlock.engine.tool_format import CALL_OPEN
from airlock.engine.tool_grammar import add_tool_call_rules
from airlock.engine.types import ToolSpec
from tests.engine.conftest import grammar_accepts

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "user"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "email": {"type": ["string", "null"]},
    },
    "required": ["name", "age", "role", "tags"],
    "additionalProperties": False,
}


def _schema_grammar(schema: Any) -> str:
    builder = GrammarBuilder()
    root = builder.add_schema(schema, prefix="s", where="response_format", param="response_format")
    return builder.render(root)


def _tool_grammar() -> str:
    builder = GrammarBuilder()
    tools = (ToolSpec("lookup", "", PERSON), ToolSpec("free", "", {}))
    root = add_tool_call_rules(builder, tools, ["lookup", "free"], 2)
    return builder.render(root)


OBJECT_DOCS = [
    '{"a": 1}',
    '{\n  "name": "Ada \\u00e9\\n",\n  "tags": [1, -2.5e3, true, null, {"x": []}],\n'
    '  "ok": false\n}',
    '{"nested": {"deeper": {"deepest": [[], [[]], {}]}}, "emoji": "\u00e9\u4e2d"}',
    "{}",
]
PERSON_DOCS = [
    '{"name": "Ada", "age": 36, "role": "admin", "tags": ["x"]}',
    '{\n  "name": "",\n  "age": -7,\n  "role": "user",\n  "tags": ["a", "b", "c"],\n'
    '  "email": null\n}',
]
TOOL_DOCS = [
    '{"name": "lookup", "arguments": {"name": "Bo", "age": 1, "role": "user", "tags": ["t"]}}'
    "\n</tool_call>",
    '{"name": "free", "arguments": {"k": [1]}}\n</tool_call>\n' + CALL_OPEN + "{"
    '"name": "free", "arguments": {}}\n</tool_call>',
]
CASES = [
    (json_object_grammar(), OBJECT_DOCS),
    (_schema_grammar(PERSON), PERSON_DOCS),
    (_tool_grammar(), TOOL_DOCS),
]


@pytest.mark.parametrize(("grammar", "docs"), CASES)
def test_every_prefix_is_live_and_its_shortest_completion_is_accepted(
    llama_model: LlamaModel, grammar: str, docs: list[str]
) -> None:
    parsed = Grammar(grammar)
    for doc in docs:
        assert grammar_accepts(llama_model, grammar, doc), doc
        state = parsed.start()
        for i, ch in enumerate(doc):
            state = state.advance(ch)
            assert not state.dead, doc[: i + 1]
            shortest = min(state.completions(), key=len)
            # Checked with llama.cpp at a sample of cut points (it is the slow side).
            if i % 7 == 0 or i == len(doc) - 1:
                assert grammar_accepts(llama_model, grammar, doc[: i + 1] + shortest)
        assert state.complete


@pytest.mark.parametrize(("grammar", "docs", "schema"), [(*CASES[0], None), (*CASES[1], PERSON)])
def test_every_completion_is_valid_json(
    grammar: str, docs: list[str], schema: dict[str, Any] | None
) -> None:
    parsed = Grammar(grammar)
    for doc in docs:
        state = parsed.start()
        for i, ch in enumerate(doc):
            state = state.advance(ch)
            for completion in state.completions():
                value = json.loads(doc[: i + 1] + completion)
                assert isinstance(value, dict)
                if schema is not None:
                    jsonschema.validate(value, schema)


@pytest.mark.parametrize(
    ("grammar", "text"),
    [
        (json_object_grammar(), "[]"),
        (json_object_grammar(), '{"a" 1}'),
        (json_object_grammar(), '{"a": 1}}'),
        (json_object_grammar(), '{"a": 01}'),
        (json_object_grammar(), '{"a": "\x01"}'),
        (json_object_grammar(), "{\n" + " " * 13 + '"a": 1}'),  # whitespace is bounded
        (_schema_grammar(PERSON), '{"name": "Ada", "age": 1, "role": "boss"'),
        (_schema_grammar(PERSON), '{"name": "much too long!!", '),
        (_schema_grammar(PERSON), '{"age": 1'),
        (_schema_grammar(PERSON), '{"name": "A", "age": 1, "role": "user", "tags": []'),
    ],
)
def test_invalid_text_is_dead_for_both(llama_model: LlamaModel, grammar: str, text: str) -> None:
    assert Grammar(grammar).start().advance(text).dead
    assert not grammar_accepts(llama_model, grammar, text, complete=False)


def test_repetition_bounds_match_llama_cpp(llama_model: LlamaModel) -> None:
    grammar = 'root ::= "x"{2,4} [a-c]{1} ( "-" | [0-9] )* "."? "!"+\n'
    parsed = Grammar(grammar)
    for text in ["xxa!", "xxxxc-1-!!", "xb!", "xxxxxa!", "xxa.!", "xxd!", "xxa"]:
        state = parsed.start().advance(text)
        assert (not state.dead and state.complete) == grammar_accepts(llama_model, grammar, text)
    assert parsed.start().completions() == {"xxa!"}


def test_syntax_errors_are_reported() -> None:
    for bad in ["root ::= missing\n", 'other ::= "x"\n', 'root ::= ( "x"\n', 'root ::= "\\q"\n']:
        with pytest.raises(GrammarSyntaxError):
            Grammar(bad)


def test_a_rule_with_no_finite_text_is_an_error() -> None:
    with pytest.raises(GrammarSyntaxError, match="finite"):
        Grammar('root ::= "a" root\n')


def test_runaway_ambiguity_is_reported() -> None:
    grammar = Grammar('root ::= "a" root "b" | "a" root "c" | "d"\n')
    state = grammar.start().advance("a" * 6)
    assert len(state.stacks) == 3 * 2**6  # each waiting for "a" or "d" (two "a" routes)
    assert "d" + "b" * 6 in state.completions()
    with pytest.raises(GrammarTrackingError):
        state.advance("a" * 6)
