"""The textual tool-calling format the embedded model reads and writes.

SmolLM2's chat template knows nothing about tools, so airlock uses the widely trained
"Hermes" convention (also used by Qwen2.5 and SmolLM3):

* tool definitions go into the system message, inside ``<tools></tools>``, one JSON
  object per line in OpenAI's ``{"type": "function", "function": {...}}`` shape;
* the assistant calls a tool by writing, per call,
  ``<tool_call>\\n{"name": "<name>", "arguments": {...}}\\n</tool_call>``
  (several calls are separated by a newline);
* tool results come back in a user turn as ``<tool_response>\\n...\\n</tool_response>``.

Templates that do support tools natively receive the OpenAI-shaped ``tools`` and
``tool_calls`` instead; the model's output format is assumed to be the same.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Sequence
from typing import Any

from airlock.engine.types import ToolCall, ToolSpec

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "CALL_SEPARATOR",
    "call_header",
    "format_tool_calls",
    "format_tool_response",
    "new_call_id",
    "openai_tool",
    "tools_system_section",
]

CALL_OPEN = "<tool_call>\n"
CALL_CLOSE = "\n</tool_call>"
CALL_SEPARATOR = "\n"

_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """An OpenAI-style tool call id: ``call_`` and 24 random alphanumerics."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def call_header(name: str) -> str:
    """The exact text that precedes a call's arguments object."""
    return '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "arguments": '


def openai_tool(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    return {"type": "function", "function": function}


def tools_system_section(tools: Sequence[ToolSpec]) -> str:
    lines = "\n".join(json.dumps(openai_tool(t), ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{lines}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def _arguments_json(arguments: str) -> str:
    # History arguments are caller-supplied strings; embed them as JSON when they are JSON.
    try:
        json.loads(arguments)
    except ValueError:
        return json.dumps(arguments, ensure_ascii=False)
    return arguments.strip()


def format_tool_calls(calls: Sequence[ToolCall]) -> str:
    return CALL_SEPARATOR.join(
        CALL_OPEN + call_header(c.name) + _arguments_json(c.arguments) + "}" + CALL_CLOSE
        for c in calls
    )


def format_tool_response(content: str) -> str:
    return f"<tool_response>\n{content}\n</tool_response>"
