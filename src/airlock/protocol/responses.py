"""Response bodies and stream chunks, as OpenAI sends them."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatDelta",
    "Completion",
    "CompletionChoice",
    "EmbeddingData",
    "EmbeddingResponse",
    "FinishReason",
    "ModelCard",
    "ModelList",
    "ResponseMessage",
    "ToolCallDelta",
    "ToolCallFunctionDelta",
    "ToolCallFunctionOut",
    "ToolCallOut",
    "Usage",
    "new_id",
    "now",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


def _is_none(value: object) -> bool:
    return value is None


def _omitted_when_none() -> Any:
    # OpenAI leaves unset delta fields out of stream chunks instead of sending nulls.
    return Field(default=None, exclude_if=_is_none)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(18)}"


def now() -> int:
    return int(time.time())


class _Out(BaseModel):
    # Upstream responses may carry fields we do not model; they pass through, except
    # explicit nulls (vLLM sends ``annotations: null`` where OpenAI's schema wants an
    # array or omits the field), which are dropped.
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _drop_null_extras(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls.model_fields}
        return data


class Usage(_Out):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class ToolCallFunctionOut(_Out):
    name: str
    arguments: str


class ToolCallOut(_Out):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunctionOut


class ResponseMessage(_Out):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = _omitted_when_none()


class ChatChoice(_Out):
    index: int = 0
    message: ResponseMessage
    logprobs: Any | None = None
    finish_reason: FinishReason | None = None


class ChatCompletion(_Out):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = _omitted_when_none()


class ToolCallFunctionDelta(_Out):
    name: str | None = _omitted_when_none()
    arguments: str | None = _omitted_when_none()


class ToolCallDelta(_Out):
    index: int
    id: str | None = _omitted_when_none()
    type: Literal["function"] | None = _omitted_when_none()
    function: ToolCallFunctionDelta | None = _omitted_when_none()


class ChatDelta(_Out):
    role: Literal["assistant"] | None = _omitted_when_none()
    content: str | None = _omitted_when_none()
    refusal: str | None = _omitted_when_none()
    tool_calls: list[ToolCallDelta] | None = _omitted_when_none()


class ChatChunkChoice(_Out):
    index: int = 0
    delta: ChatDelta
    logprobs: Any | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(_Out):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = _omitted_when_none()
    system_fingerprint: str | None = _omitted_when_none()


class CompletionChoice(_Out):
    index: int = 0
    text: str
    logprobs: Any | None = None
    finish_reason: FinishReason | None = None


class Completion(_Out):
    """Both the ``/v1/completions`` body and its stream chunks (same object type)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = _omitted_when_none()
    system_fingerprint: str | None = _omitted_when_none()


class EmbeddingData(_Out):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(_Out):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: dict[str, int] = Field(default_factory=dict)


class ModelCard(_Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(_Out):
    object: Literal["list"] = "list"
    data: list[ModelCard]
