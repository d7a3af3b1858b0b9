"""Grammars that force the model's output into well-formed tool calls.

The grammar covers the text *after* the first ``<tool_call>\\n`` marker (the engine writes
that marker itself when a call is required, or detects it when the model chooses to call):

    call "\\n</tool_call>" ( "\\n" "<tool_call>\\n" call "\\n</tool_call>" ){0,max_calls-1}

where ``call`` is ``{"name": "<tool>", "arguments": <that tool's parameters schema>}`` for
one of the allowed tools, so names are always known and arguments always validate.
"""

from __future__ import annotations

from collections.abc import Sequence

from airlock.engine.json_grammar import GrammarBuilder, gbnf_literal
from airlock.engine.tool_format import CALL_CLOSE, CALL_OPEN, CALL_SEPARATOR, call_header
from airlock.engine.types import ToolSpec
from airlock.errors import BadRequestError

__all__ = ["MAX_PARALLEL_CALLS", "add_tool_call_rules", "check_tool_schemas"]

MAX_PARALLEL_CALLS = 4
"""Most calls one response may carry when parallel calls are allowed (bounds the loop)."""


def _parameters_rule(builder: GrammarBuilder, tool: ToolSpec, index: int) -> str:
    params = tool.parameters
    where = f"tools[{index}].function.parameters"
    if not params:
        return "json-object"
    kind = params.get("type")
    if kind != "object" and not (kind is None and "properties" in params):
        raise BadRequestError(
            f"{where} must be a JSON Schema with type 'object' (function arguments are an object).",
            param="tools",
        )
    return builder.add_schema(params, prefix=f"tool{index}", where=where, param="tools")


def check_tool_schemas(tools: Sequence[ToolSpec]) -> None:
    """Reject tool parameter schemas that constrained decoding could not enforce."""
    builder = GrammarBuilder()
    for i, tool in enumerate(tools):
        _parameters_rule(builder, tool, i)


def add_tool_call_rules(
    builder: GrammarBuilder, tools: Sequence[ToolSpec], allowed: Sequence[str], max_calls: int
) -> str:
    """Add rules for one or more calls after the first marker; returns the rule's name."""
    if max_calls < 1:
        raise ValueError("max_calls must be at least 1")
    alternatives = []
    for i, tool in enumerate(tools):
        if tool.name not in allowed:
            continue
        args = _parameters_rule(builder, tool, i)
        alternatives.append(f"{gbnf_literal(call_header(tool.name))} {args} " + '"}"')
    if not alternatives:
        raise ValueError("no allowed tool to call")
    call = builder.add_rule("tool-call", " | ".join(f"( {a} )" for a in alternatives))
    block = builder.add_rule("tool-call-block", f"{call} {gbnf_literal(CALL_CLOSE)}")
    body = block
    if max_calls > 1:
        again = gbnf_literal(CALL_SEPARATOR + CALL_OPEN)
        body += f" ( {again} {block} ){{0,{max_calls - 1}}}"
    return builder.add_rule("tool-calls", body)
