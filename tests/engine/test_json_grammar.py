from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from airlock.engine.gbnf import Grammar
from airlock.engine.json_grammar import (
    MAX_REPEAT,
    GrammarBuilder,
    gbnf_literal,
    json_object_grammar,
)
from airlock.engine.llama_model import LlamaModel
from airlock.errors import BadRequestError
from tests.engine.conftest import grammar_accepts

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "email": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b", 3]}, "maxItems": 2},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}

TREE: dict[str, Any] = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "v": {"type": "number"},
                "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["v"],
        }
    },
    "$ref": "#/$defs/node",
}


def _grammar(schema: Any) -> str:
    builder = GrammarBuilder()
    root = builder.add_schema(schema, prefix="s", where="response_format", param="response_format")
    return builder.render(root)


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        (PERSON, {"name": "Ada", "age": 36}),
        (PERSON, {"name": "Bob", "age": -4, "email": None, "tags": ["a", 3]}),
        (PERSON, {"name": "", "age": 0, "tags": []}),
        (TREE, {"v": 1.5, "kids": [{"v": 2}, {"v": -3e2, "kids": []}]}),
        ({"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}]}, [1, "x"]),
        ({"type": "object", "additionalProperties": {"type": "boolean"}}, {"k": True, "j": False}),
        ({"anyOf": [{"type": "string", "minLength": 2}, {"type": "null"}]}, "hé"),
        ({"anyOf": [{"type": "string", "minLength": 2}, {"type": "null"}]}, None),
        ({"allOf": [{"type": "integer"}]}, 42),
        ({}, {"anything": [1, "two", None]}),
    ],
)
def test_grammar_accepts_valid_instances(
    llama_model: LlamaModel, schema: Any, instance: Any
) -> None:
    jsonschema.validate(instance, schema)  # the fixture itself must be valid
    assert grammar_accepts(llama_model, _grammar(schema), json.dumps(instance))
    assert grammar_accepts(llama_model, _grammar(schema), json.dumps(instance, indent=2))


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        (PERSON, '{"age": 3, "name": "x"}'),  # required properties come first, in order
        (PERSON, '{"name": "x"}'),  # missing required
        (PERSON, '{"name": "x", "age": 1.5}'),  # not an integer
        (PERSON, '{"name": "x", "age": 1, "extra": 1}'),  # undeclared property
        (PERSON, '{"name": "abcdefghijklm", "age": 1}'),  # maxLength 12
        (PERSON, '{"name": "x", "age": 1, "tags": ["a", "b", "a"]}'),  # maxItems 2
        (PERSON, '{"name": "x", "age": 1, "tags": ["c"]}'),  # not in enum
        (PERSON, '{"name": "x", "age": 01}'),  # leading zero is not JSON
        (PERSON, '{"name": "a\nb", "age": 1}'),  # raw control character in a string
        (PERSON, '{"name": "x", "age": 1}{'),  # trailing text
        (TREE, '{"v": 1, "kids": [{"kids": []}]}'),  # nested node misses "v"
        ({"type": "array", "prefixItems": [{"type": "integer"}], "items": False}, "[1, 2]"),
    ],
)
def test_grammar_rejects_invalid_text(llama_model: LlamaModel, schema: Any, text: str) -> None:
    assert not grammar_accepts(llama_model, _grammar(schema), text)


def test_whitespace_is_bounded(llama_model: LlamaModel) -> None:
    grammar = json_object_grammar()
    assert grammar_accepts(llama_model, grammar, '{\n  "a": [1, 2],\n  "b": {}\n}')
    assert not grammar_accepts(llama_model, grammar, "{" + " " * 20 + "}")
    assert not grammar_accepts(llama_model, grammar, '{"a":\n\n\n1}')
    assert not grammar_accepts(llama_model, grammar, '{"a": 1}   ')


def test_json_object_grammar_only_accepts_objects(llama_model: LlamaModel) -> None:
    grammar = json_object_grammar()
    assert grammar_accepts(llama_model, grammar, '{"nested": {"deep": [true, null, "s", -0.5e3]}}')
    assert not grammar_accepts(llama_model, grammar, "[1, 2]")
    assert not grammar_accepts(llama_model, grammar, '"just a string"')


@pytest.mark.parametrize(
    ("schema", "feature"),
    [
        ({"type": "integer", "multipleOf": 5}, "multipleOf"),
        ({"type": "number", "minimum": 0.5}, "minimum"),
        ({"type": "number", "exclusiveMaximum": 3}, "exclusiveMaximum"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no number satisfies"),
        ({"type": "integer", "minimum": 1e17}, "16 digits"),
        ({"type": "string", "pattern": "^a+$"}, "pattern"),
        ({"type": "object", "patternProperties": {"^x": {}}}, "patternProperties"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "oneOf"),
        ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "allOf"),
        ({"not": {"type": "string"}}, "not"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "string", "maxLength": MAX_REPEAT + 1}, "maxLength"),
        ({"$ref": "https://example.com/schema.json"}, "$ref"),
        ({"type": "object", "properties": {"a": False}}, "false"),
    ],
)
def test_unsupported_features_are_named(schema: Any, feature: str) -> None:
    with pytest.raises(BadRequestError) as info:
        _grammar(schema)
    assert info.value.param == "response_format"
    assert feature in info.value.message
    assert info.value.status_code == 400


@pytest.mark.parametrize("schema", [{"type": "strnig"}, {"required": "name"}, "not a schema", []])
def test_invalid_schemas_are_rejected(schema: Any) -> None:
    with pytest.raises(BadRequestError) as info:
        _grammar(schema)
    assert info.value.param == "response_format"


def test_unresolvable_ref_is_rejected() -> None:
    with pytest.raises(BadRequestError, match="does not resolve"):
        _grammar({"$ref": "#/$defs/missing"})


def test_gbnf_literal_escapes() -> None:
    assert gbnf_literal('a"b\\c\nd\te\x01') == '"a\\"b\\\\c\\nd\\te\\x01"'


INT_RANGES = [
    {},
    {"minimum": 0},
    {"minimum": 1},
    {"minimum": -3},
    {"maximum": 0},
    {"maximum": -7},
    {"minimum": 13, "maximum": 271},
    {"minimum": -120, "maximum": 45},
    {"minimum": -999, "maximum": -100},
    {"exclusiveMinimum": 9, "exclusiveMaximum": 100},
    {"minimum": 2.5, "maximum": 9.5},
    {"minimum": 100, "maximum": 100},
    {"minimum": 7, "exclusiveMinimum": 9, "maximum": 1000, "exclusiveMaximum": 1000},
]


@pytest.mark.parametrize("bounds", INT_RANGES)
def test_integer_bounds_are_exact(bounds: dict[str, float]) -> None:
    schema = {"type": "integer", **bounds}
    state = Grammar(_grammar(schema)).start()
    for n in range(-1200, 1200):
        valid = jsonschema.Draft202012Validator(schema).is_valid(n)
        parsed = state.advance(str(n))
        assert (not parsed.dead and parsed.complete) == valid, n
    for text in ["007", "1.0", "1e2", "--1"]:
        assert not state.advance(text).complete


@pytest.mark.parametrize(
    "bounds",
    [{"minimum": 0}, {"minimum": 3, "maximum": 12}, {"minimum": -5, "maximum": 2}, {"maximum": -2}],
)
def test_number_bounds_are_exact(bounds: dict[str, float]) -> None:
    schema = {"type": "number", **bounds}
    state = Grammar(_grammar(schema)).start()
    validator = jsonschema.Draft202012Validator(schema)
    for tenths in range(-200, 200):
        for text in (f"{tenths / 10:.1f}", str(tenths // 10), f"{tenths / 10:.1f}00"):
            parsed = state.advance(text)
            valid = validator.is_valid(json.loads(text))
            assert (not parsed.dead and parsed.complete) == valid, text


def test_numeric_bounds_agree_with_llama_cpp(llama_model: LlamaModel) -> None:
    grammar = _grammar(
        {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 13, "maximum": 271},
                "x": {"type": "number", "minimum": -5, "maximum": 2},
            },
            "required": ["n", "x"],
        }
    )
    for text, ok in [
        ('{"n": 13, "x": -5}', True),
        ('{"n": 271, "x": 2.000}', True),
        ('{"n": 100, "x": -4.75}', True),
        ('{"n": 12, "x": 0}', False),
        ('{"n": 272, "x": 0}', False),
        ('{"n": 20, "x": 2.5}', False),
        ('{"n": 20, "x": -5.1}', False),
    ]:
        assert grammar_accepts(llama_model, grammar, text) == ok, text


def test_untyped_numeric_bounds_generate_numbers(llama_model: LlamaModel) -> None:
    grammar = _grammar({"minimum": 0})
    assert grammar_accepts(llama_model, grammar, "4.5")
    assert not grammar_accepts(llama_model, grammar, "-1")
