"""Typed jobs and events exchanged between the gateway and the embedded engine.

The engine knows nothing about HTTP or the OpenAI wire format: the embedded provider
adapter turns protocol requests into jobs and engine events into OpenAI chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatJob",
    "ChatTurn",
    "CompletionJob",
    "EngineEvent",
    "FinishReason",
    "Finished",
    "JsonObjectFormat",
    "JsonSchemaFormat",
    "ResponseFormat",
    "SamplingParams",
    "TextDelta",
    "TextFormat",
    "ToolCall",
    "ToolCallArgumentsDelta",
    "ToolCallStart",
    "ToolChoice",
    "ToolSpec",
]

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """OpenAI sampling parameters, already validated for range by the protocol layer.

    ``max_tokens`` of ``None`` means "up to the end of the context window".
    ``logit_bias`` maps token ids to a bias in [-100, 100].
    """

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Mapping[int, float] | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TextFormat:
    pass


@dataclass(frozen=True, slots=True)
class JsonObjectFormat:
    pass


@dataclass(frozen=True, slots=True)
class JsonSchemaFormat:
    name: str
    schema: Mapping[str, Any]
    strict: bool = False


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str | None
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``mode`` is ``none``, ``auto``, ``required`` or ``function`` (with ``function_name``)."""

    mode: Literal["none", "auto", "required", "function"] = "auto"
    function_name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One message of the conversation. ``content`` is already flattened to text."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatJob:
    messages: tuple[ChatTurn, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    response_format: ResponseFormat = field(default_factory=TextFormat)
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True


@dataclass(frozen=True, slots=True)
class CompletionJob:
    """A raw text completion (``/v1/completions``); ``prompt`` is text or token ids."""

    prompt: str | tuple[int, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    echo: bool = False
    suffix: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


EngineEvent = TextDelta | ToolCallStart | ToolCallArgumentsDelta | Finished
