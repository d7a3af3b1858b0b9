"""JSON Schema → llama.cpp GBNF grammars for constrained decoding.

airlock writes its own converter instead of using ``llama_cpp.llama_grammar`` because the
bundled one silently ignores keywords it cannot enforce (so "validates" would be a lie),
lets raw control characters into strings (not valid JSON) and has no caller-facing errors.

Whitespace is bounded on purpose: small models happily emit whitespace forever inside JSON
when the grammar allows ``ws*``; here every whitespace slot is at most one newline plus a
short indent, so generation always moves forward. Numbers have bounded digit counts for the
same reason. Everything this converter accepts, the grammar enforces; every keyword it does
not enforce is rejected with :class:`~airlock.errors.BadRequestError` naming the keyword.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions

from airlock.engine.number_grammar import INT_LIMIT, integer_body, number_body
from airlock.errors import BadRequestError

__all__ = ["MAX_REPEAT", "GrammarBuilder", "gbnf_literal", "json_object_grammar"]

MAX_REPEAT = 512
"""Largest ``maxLength``/``maxItems`` enforced; llama.cpp expands bounded repetitions."""

# Keywords that never constrain an instance (annotations) or are handled structurally.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "deprecated",
        "readOnly",
        "writeOnly",
        # An annotation under JSON Schema 2020-12 unless a format assertion vocabulary is used.
        "format",
    }
)
_HANDLED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
    }
)
_NUMERIC = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")

# One whitespace slot: nothing, a space, or a newline with a short indent (bounded).
_WS = '( " " | "\\n" " "{0,12} )?'

_PRIMITIVES: Mapping[str, str] = {
    "ws": _WS,
    "json-char": '[^"\\\\\\x00-\\x1F\\x7F] | "\\\\" ( ["\\\\/bfnrt] | "u" [0-9a-fA-F]{4} )',
    "json-string": '"\\"" json-char* "\\""',
    "json-int": '"-"? ( "0" | [1-9] [0-9]{0,15} )',
    "json-number": 'json-int ( "." [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,3} )?',
    "json-bool": '"true" | "false"',
    "json-null": '"null"',
    "json-value": "json-object | json-array | json-string | json-number | json-bool | json-null",
    "json-object": (
        '"{" ws ( json-string ":" " "? json-value ( "," ws json-string ":" " "? json-value )* )?'
        ' ws "}"'
    ),
    "json-array": '"[" ws ( json-value ( "," ws json-value )* )? ws "]"',
}


def gbnf_literal(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _repeat(item: str, low: int, high: int | None) -> str:
    if high is None:
        return f"( {item} ){{{low},}}"
    return f"( {item} ){{{low},{high}}}"


class GrammarBuilder:
    """Accumulates GBNF rules for one grammar; several schemas may share one builder.

    ``where`` names the request field in error messages (e.g. ``response_format`` or
    ``tools[1].function.parameters``); ``param`` is the error's ``param``.
    """

    def __init__(self) -> None:
        self._rules: dict[str, str] = dict(_PRIMITIVES)
        self._counter = 0

    def add_rule(self, name: str, body: str) -> str:
        if name in self._rules:
            raise ValueError(f"duplicate grammar rule {name}")
        self._rules[name] = body
        return name

    def render(self, root_body: str) -> str:
        """The complete grammar text with ``root ::= root_body``."""
        lines = [f"root ::= {root_body}"]
        lines.extend(f"{name} ::= {body}" for name, body in self._rules.items())
        return "\n".join(lines) + "\n"

    def add_schema(self, schema: Any, *, prefix: str, where: str, param: str) -> str:
        """Add rules for ``schema``; returns the name of the rule matching it."""
        _check_schema(schema, where=where, param=param)
        return _SchemaVisitor(self, schema, prefix=prefix, where=where, param=param).root()

    def fresh_name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"


def json_object_grammar() -> str:
    """Generic grammar for ``response_format: json_object``: any JSON object."""
    return GrammarBuilder().render("json-object")


def _check_schema(schema: Any, *, where: str, param: str) -> None:
    if not isinstance(schema, Mapping):
        raise BadRequestError(f"{where} must be a JSON Schema object.", param=param)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        # The validator's message may quote schema values; name only the failing keyword.
        raise BadRequestError(
            f"{where} is not a valid JSON Schema (problem with keyword '{exc.validator}').",
            param=param,
        ) from None


class _SchemaVisitor:
    def __init__(
        self, builder: GrammarBuilder, root: Any, *, prefix: str, where: str, param: str
    ) -> None:
        self._b = builder
        self._root = root
        self._prefix = prefix
        self._where = where
        self._param = param
        self._refs: dict[str, str] = {}

    def root(self) -> str:
        return self._visit(self._root)

    def _unsupported(self, what: str) -> BadRequestError:
        return BadRequestError(
            f"{self._where} uses {what}, which constrained decoding does not support. "
            "Supported: type, enum, const, properties, required, additionalProperties, "
            "items, prefixItems, minItems, maxItems, minLength, maxLength, minimum, maximum, "
            "exclusiveMinimum, exclusiveMaximum (numbers: whole-number minimum/maximum only), "
            f"anyOf, $ref (to #/$defs or #/definitions), with maxLength/maxItems up to "
            f"{MAX_REPEAT}.",
            param=self._param,
        )

    def _rule(self, body: str) -> str:
        return self._b.add_rule(self._b.fresh_name(self._prefix), body)

    def _visit(self, schema: Any) -> str:
        if schema is True:
            return "json-value"
        if schema is False:
            raise self._unsupported("a 'false' schema (nothing can match it)")
        if not isinstance(schema, Mapping):
            raise self._unsupported("a non-object schema")
        for key in schema:
            if key not in _ANNOTATIONS and key not in _HANDLED and not key.startswith("x-"):
                raise self._unsupported(f"the JSON Schema keyword '{key}'")
        if "$ref" in schema:
            if len(set(schema) - _ANNOTATIONS - {"$ref"}) > 0:
                raise self._unsupported("'$ref' next to other constraints")
            return self._ref(schema["$ref"])
        if "allOf" in schema:
            parts = schema["allOf"]
            if len(parts) != 1 or len(set(schema) - _ANNOTATIONS - {"allOf"}) > 0:
                raise self._unsupported("'allOf' with more than one schema")
            return self._visit(parts[0])
        if "oneOf" in schema:
            raise self._unsupported("'oneOf' (use 'anyOf')")
        if "anyOf" in schema:
            if len(set(schema) - _ANNOTATIONS - {"anyOf"}) > 0:
                raise self._unsupported("'anyOf' next to other constraints")
            return self._rule(" | ".join(self._visit(alt) for alt in schema["anyOf"]))
        if "const" in schema:
            return self._rule(gbnf_literal(json.dumps(schema["const"], ensure_ascii=False)))
        if "enum" in schema:
            values = schema["enum"]
            if not values:
                raise self._unsupported("an empty 'enum'")
            alts = [gbnf_literal(json.dumps(v, ensure_ascii=False)) for v in values]
            return self._rule(" | ".join(alts))
        types = schema.get("type")
        if types is None:
            if _untyped(schema):
                return "json-value"
            types = _implied(schema)
        elif isinstance(types, str):
            types = [types]
        alts = [self._typed(t, schema) for t in types]
        return alts[0] if len(alts) == 1 else self._rule(" | ".join(alts))

    def _ref(self, ref: str) -> str:
        if ref in self._refs:
            return self._refs[ref]
        target: Any
        if ref == "#":
            target = self._root
        elif ref.startswith(("#/$defs/", "#/definitions/")):
            _, section, name = ref.split("/", 2)
            defs = self._root.get(section) if isinstance(self._root, Mapping) else None
            if not isinstance(defs, Mapping) or name not in defs:
                raise BadRequestError(
                    f"{self._where} has a '$ref' that does not resolve.", param=self._param
                )
            target = defs[name]
        else:
            raise self._unsupported("a '$ref' outside '#/$defs' or '#/definitions'")
        # Reserve the name first so recursive schemas terminate.
        name = self._b.fresh_name(self._prefix)
        self._refs[ref] = name
        self._b.add_rule(name, self._visit(target))
        return name

    def _typed(self, kind: str, schema: Mapping[str, Any]) -> str:
        if kind == "string":
            return self._string(schema)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return "json-bool"
        if kind == "null":
            return "json-null"
        if kind == "object":
            return self._object(schema)
        return self._array(schema)

    def _bounds(self, schema: Mapping[str, Any], low_key: str, high_key: str) -> tuple[int, int]:
        """(low, high) repetition bounds; high is -1 when unbounded."""
        low = int(schema.get(low_key, 0))
        high = int(schema.get(high_key, -1))
        if low > MAX_REPEAT:
            raise self._unsupported(f"'{low_key}' above {MAX_REPEAT}")
        if high > MAX_REPEAT:
            raise self._unsupported(f"'{high_key}' above {MAX_REPEAT}")
        if 0 <= high < low:
            raise self._unsupported(f"'{high_key}' below '{low_key}' (nothing can match)")
        return low, high

    def _number(self, schema: Mapping[str, Any], *, integer: bool) -> str:
        low: int | None = None
        high: int | None = None
        for key in _NUMERIC:
            if key not in schema:
                continue
            value = schema[key]
            if integer:
                bound = {
                    "minimum": math.ceil(value),
                    "exclusiveMinimum": math.floor(value) + 1,
                    "maximum": math.floor(value),
                    "exclusiveMaximum": math.ceil(value) - 1,
                }[key]
            elif key.startswith("exclusive"):
                raise self._unsupported(f"'{key}' on a number (it works on integers)")
            elif not float(value).is_integer():
                raise self._unsupported(f"a '{key}' that is not a whole number on a number")
            else:
                bound = int(value)
            if key.endswith("inimum"):
                low = bound if low is None else max(low, bound)
            else:
                high = bound if high is None else min(high, bound)
        if low is None and high is None:
            return "json-int" if integer else "json-number"
        if (low is not None and low > INT_LIMIT) or (high is not None and high < -INT_LIMIT):
            raise self._unsupported("numeric bounds beyond 16 digits")
        if low is not None and high is not None and low > high:
            raise self._unsupported("numeric bounds that no number satisfies")
        return self._rule(integer_body(low, high) if integer else number_body(low, high))

    def _string(self, schema: Mapping[str, Any]) -> str:
        if "minLength" not in schema and "maxLength" not in schema:
            return "json-string"
        low, high = self._bounds(schema, "minLength", "maxLength")
        reps = f"{{{low},}}" if high < 0 else f"{{{low},{high}}}"
        return self._rule(f'"\\"" json-char{reps} "\\""')

    def _array(self, schema: Mapping[str, Any]) -> str:
        low, high = self._bounds(schema, "minItems", "maxItems")
        # A generator need not cover every valid instance: with prefixItems, always emit the
        # whole prefix, then as many `items` as the bounds require/allow.
        elems = [self._visit(s) for s in schema.get("prefixItems", [])]
        n = len(elems)
        if 0 <= high < n:
            raise self._unsupported("'maxItems' smaller than the number of 'prefixItems'")
        extra_schema = schema.get("items", True)
        extra_low = max(0, low - n)
        extra_high = None if high < 0 else high - n
        if extra_schema is False:
            if extra_low > 0:
                raise self._unsupported("'minItems' larger than 'prefixItems' with items: false")
            extra_high = 0
        parts = ['"[" ws']
        if n:
            parts.append(' "," ws '.join(elems))
        if extra_high != 0:
            item = self._visit(extra_schema)
            if n:
                parts.append(_repeat(f'"," ws {item}', extra_low, extra_high))
            else:
                more_high = None if extra_high is None else extra_high - 1
                rest = f"{item} " + _repeat(f'"," ws {item}', max(0, extra_low - 1), more_high)
                parts.append(rest if extra_low > 0 else f"( {rest} )?")
        parts.append('ws "]"')
        return self._rule(" ".join(parts))

    def _object(self, schema: Mapping[str, Any]) -> str:
        props: Mapping[str, Any] = schema.get("properties", {})
        required = list(dict.fromkeys(schema.get("required", [])))
        extra = schema.get("additionalProperties", True)
        if not props and not required:
            if extra is True:
                return "json-object"
            if extra is False:
                return self._rule('"{" ws "}"')
            value = self._visit(extra)
            kv = f'json-string ":" " "? {value}'
            return self._rule(f'"{{" ws ( {kv} ( "," ws {kv} )* )? ws "}}"')
        kvs: dict[str, str] = {}
        for name in [*props, *[r for r in required if r not in props]]:
            value = self._visit(props.get(name, True))
            key = gbnf_literal(json.dumps(name, ensure_ascii=False))
            kvs[name] = self._rule(f'{key} ":" " "? {value}')
        # Required properties first (schema order), then optional ones, each independently
        # optional; extra (undeclared) properties are never generated, which is always valid.
        req = [kvs[name] for name in kvs if name in required]
        opt = [kvs[name] for name in kvs if name not in required]
        body = '"{" ws ' + ' "," ws '.join(req)
        if opt:
            chains = []
            for i in range(len(opt)):
                later = " ".join(f'( "," ws {o} )?' for o in opt[i + 1 :])
                chains.append(f"{opt[i]} {later}".strip())
            alternatives = " | ".join(f"( {c} )" for c in chains)
            body += f' ( "," ws ( {alternatives} ) )?' if req else f" ( {alternatives} )?"
        return self._rule(body + ' ws "}"')


def _untyped(schema: Mapping[str, Any]) -> bool:
    return not any(
        k in schema
        for k in (
            "properties",
            "required",
            "additionalProperties",
            "items",
            "prefixItems",
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            *_NUMERIC,
        )
    )


def _implied(schema: Mapping[str, Any]) -> list[str]:
    # No "type" but type-specific keywords: JSON Schema lets other types through, but a
    # generator should produce what the author evidently meant.
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return ["object"]
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return ["array"]
    if any(k in schema for k in _NUMERIC):
        return ["number"]
    return ["string"]
