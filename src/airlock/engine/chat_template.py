"""Render a conversation with the chat template stored in the GGUF metadata.

The template is untrusted data from a model file, so it runs in Jinja2's immutable sandbox
with the same helpers Hugging Face provides (``raise_exception``, ``strftime_now``, a
non-escaping ``tojson``). Templates that reference ``tools`` get OpenAI-shaped tools and
tool calls; others get them as text in the format documented in :mod:`tool_format`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airlock.engine.tool_format import (
    format_tool_calls,
    format_tool_response,
    openai_tool,
    tools_system_section,
)
from airlock.engine.types import ChatTurn, ToolSpec
from airlock.errors import BadRequestError

__all__ = ["CHATML_TEMPLATE", "ChatTemplate", "TemplateRenderError"]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""Used only when a model file carries no template of its own."""


class TemplateRenderError(BadRequestError):
    """The model's chat template rejected the conversation (e.g. role order)."""


def _raise_exception(message: str) -> NoReturn:
    # Template-authored text (e.g. "roles must alternate"); it never contains message content.
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, sort_keys: bool = False
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)  # templates expect local time


class ChatTemplate:
    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self._template = env.from_string(source)
        self._bos = bos_token
        self._eos = eos_token
        self.supports_tools = "tools" in jinja2.meta.find_undeclared_variables(env.parse(source))

    def render(self, messages: Sequence[ChatTurn], tools: Sequence[ToolSpec] = ()) -> str:
        """The prompt text, ending with the assistant generation prompt."""
        context: dict[str, Any] = {
            "add_generation_prompt": True,
            "bos_token": self._bos,
            "eos_token": self._eos,
        }
        if self.supports_tools:
            context["messages"] = [_native_message(m) for m in messages]
            if tools:
                context["tools"] = [openai_tool(t) for t in tools]
        else:
            context["messages"] = _text_messages(messages, tools)
        try:
            return self._template.render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateRenderError(
                "The model's chat template cannot render this conversation "
                f"({type(exc).__name__}); check the order and roles of the messages.",
                param="messages",
            ) from None


def _native_message(turn: ChatTurn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": turn.role, "content": turn.content or ""}
    if turn.name is not None:
        message["name"] = turn.name
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in turn.tool_calls
        ]
    if turn.tool_call_id is not None:
        message["tool_call_id"] = turn.tool_call_id
    return message


def _text_messages(turns: Sequence[ChatTurn], tools: Sequence[ToolSpec]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for turn in turns:
        content = turn.content or ""
        if turn.role == "tool":
            # Consecutive tool results share one user turn, as Hermes-style models expect.
            response = format_tool_response(content)
            if out and out[-1]["role"] == "user" and out[-1].get("_tool") == "1":
                out[-1]["content"] += "\n" + response
            else:
                out.append({"role": "user", "content": response, "_tool": "1"})
            continue
        role = "system" if turn.role == "developer" else turn.role
        if turn.role == "assistant" and turn.tool_calls:
            calls = format_tool_calls(turn.tool_calls)
            content = f"{content}\n{calls}" if content else calls
        out.append({"role": role, "content": content})
    for message in out:
        message.pop("_tool", None)
    if tools:
        section = tools_system_section(tools)
        if out and out[0]["role"] == "system":
            first = out[0]["content"]
            out[0]["content"] = f"{first}\n\n{section}" if first else section
        else:
            out.insert(0, {"role": "system", "content": section})
    return out
