"""Anthropic's streaming events → OpenAI chat completion chunks.

Anthropic streams ``message_start``, then per content block ``content_block_start`` /
``content_block_delta``… / ``content_block_stop``, then ``message_delta`` (stop reason,
cumulative usage) and ``message_stop``; ``ping`` may come at any time. OpenAI clients
expect a role chunk, content and tool-call deltas, a chunk with ``finish_reason`` and,
last, a usage chunk with no choices (the gateway drops it unless ``include_usage``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from airlock.protocol.responses import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatDelta,
    FinishReason,
    ToolCallDelta,
    ToolCallFunctionDelta,
    Usage,
    now,
)
from airlock.providers.anthropic_translate import AnthropicUsage, JsonTool, finish_reason

__all__ = ["ChunkTranslator"]

BlockKind = Literal["text", "tool", "json", "other"]


@dataclass(slots=True)
class _Block:
    kind: BlockKind
    tool_index: int = -1


def _dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")  # mapped to "upstream_malformed"
    return value


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


class ChunkTranslator:
    """Feed it each decoded event; it returns the chunks to send. ``done`` after the end."""

    def __init__(self, json_tool: JsonTool | None, deployment: str) -> None:
        self._json_tool = json_tool
        self._deployment = deployment
        self._id = "chatcmpl-anthropic"
        self._model = ""
        self._created = now()
        self._role_sent = False
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._json_parts: list[str] = []
        self._json_sent: str | None = None
        self._stop_reason: str | None = None
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self.done = False

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        handler = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
        }.get(event)
        # ``ping`` and event types added later carry nothing an OpenAI client needs.
        return handler(data) if handler is not None else []

    # --- events ------------------------------------------------------------------------

    def _message_start(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        msg = _dict(data.get("message"))
        if isinstance(msg.get("id"), str):
            self._id = f"chatcmpl-{msg['id']}"
        if isinstance(msg.get("model"), str):
            self._model = msg["model"]
        self._usage(msg.get("usage"))
        return []

    def _block_start(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        index = _int(data.get("index"))
        block = _dict(data.get("content_block"))
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            return self._text(text) if isinstance(text, str) else []
        if kind == "tool_use":
            name = block.get("name")
            if not isinstance(name, str) or not isinstance(block.get("id"), str):
                raise ValueError("tool_use block without id or name")
            if self._json_tool is not None and name == self._json_tool.name:
                self._blocks[index] = _Block("json")
                return []
            self._blocks[index] = _Block("tool", self._tools)
            self._tools += 1
            call = ToolCallDelta(
                index=self._tools - 1,
                id=block["id"],
                type="function",
                function=ToolCallFunctionDelta(name=name, arguments=""),
            )
            return self._emit(ChatDelta(tool_calls=[call]))
        self._blocks[index] = _Block("other")  # thinking and future block types
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        block = self._blocks.get(_int(data.get("index")))
        if block is None:
            raise ValueError("delta for a block that was not started")
        delta = _dict(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta" and block.kind == "text":
            text = delta.get("text")
            return self._text(text) if isinstance(text, str) else []
        if kind == "input_json_delta":
            part = delta.get("partial_json")
            if not isinstance(part, str) or not part:
                return []
            if block.kind == "tool":
                call = ToolCallDelta(
                    index=block.tool_index, function=ToolCallFunctionDelta(arguments=part)
                )
                return self._emit(ChatDelta(tool_calls=[call]))
            if block.kind == "json":
                self._json_parts.append(part)
                if self._json_tool is not None and not self._json_tool.wrapped:
                    return self._emit(ChatDelta(content=part))
        return []

    def _block_stop(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        block = self._blocks.get(_int(data.get("index")))
        tool = self._json_tool
        if block is None or block.kind != "json" or tool is None:
            return []
        if not tool.wrapped:
            self._json_sent = "".join(self._json_parts)
            return []
        # A wrapped answer ({"value": …}) can only be unwrapped once it is complete.
        try:
            value = orjson.loads("".join(self._json_parts) or "{}")
        except orjson.JSONDecodeError:
            return []  # cut off (max_tokens): nothing valid to send
        self._json_sent = tool.content(value)
        return self._emit(ChatDelta(content=self._json_sent))

    def _message_delta(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        delta = data.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            self._stop_reason = delta["stop_reason"]
        self._usage(data.get("usage"))
        return []

    def _message_stop(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        del data
        finish: FinishReason = finish_reason(self._stop_reason, tool_calls=self._tools > 0)
        if self._json_tool is not None and finish == "stop" and not self._tools:
            content = self._json_sent
            if content is None and self._json_parts and not self._json_tool.wrapped:
                content = "".join(self._json_parts)
            self._json_tool.check(content or "", self._deployment)
        chunks = self._emit(ChatDelta(), finish_reason=finish)
        usage = Usage.of(self._prompt_tokens, self._completion_tokens)
        chunks.append(self._chunk([], usage=usage))
        self.done = True
        return chunks

    # --- helpers -----------------------------------------------------------------------

    def _text(self, text: str) -> list[ChatCompletionChunk]:
        # In JSON mode only the JSON tool's input is the answer; stray text is dropped.
        if not text or self._json_tool is not None:
            return []
        return self._emit(ChatDelta(content=text))

    def _usage(self, raw: object) -> None:
        if not isinstance(raw, dict):
            return
        usage = AnthropicUsage.model_validate(raw)
        prompt = usage.prompt_tokens()
        if prompt is not None:
            self._prompt_tokens = prompt
        if usage.output_tokens is not None:
            # message_delta's output_tokens is cumulative, not an increment.
            self._completion_tokens = usage.output_tokens

    def _emit(
        self, delta: ChatDelta, finish_reason: FinishReason | None = None
    ) -> list[ChatCompletionChunk]:
        chunks: list[ChatCompletionChunk] = []
        if not self._role_sent:
            self._role_sent = True
            chunks.append(
                self._chunk([ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))])
            )
        chunks.append(self._chunk([ChatChunkChoice(delta=delta, finish_reason=finish_reason)]))
        return chunks

    def _chunk(
        self, choices: list[ChatChunkChoice], usage: Usage | None = None
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id, created=self._created, model=self._model, choices=choices, usage=usage
        )
