"""``POST /v1/chat/completions`` request model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from airlock.protocol.common import (
    LogitBias,
    Penalty,
    RequestModel,
    StopParam,
    StreamOptions,
)

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
    "FunctionTool",
    "JsonSchemaSpec",
    "ResponseFormatParam",
    "StreamOptions",
    "ToolCallParam",
    "ToolChoiceParam",
]

_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Open):
    type: Literal["text"]
    text: str


class OtherPart(_Open):
    """Image, audio and file parts: accepted by the schema, refused by text-only models."""

    type: Literal["image_url", "input_audio", "file", "refusal"]


ContentPart = Annotated[TextPart | OtherPart, Field(discriminator="type")]


class FunctionCallParam(_Open):
    name: str
    arguments: str


class ToolCallParam(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallParam


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("messages with role 'tool' must have a 'tool_call_id'")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError("only assistant messages may have 'tool_calls'")
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"messages with role '{self.role}' must have 'content'")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("assistant messages need 'content' or 'tool_calls'")
        return self

    def text(self) -> str | None:
        """The message content flattened to text; non-text parts raise ``ValueError``."""
        if self.content is None or isinstance(self.content, str):
            return self.content
        texts: list[str] = []
        for part in self.content:
            if not isinstance(part, TextPart):
                raise ValueError(part.type)
            texts.append(part.text)
        return "".join(texts)


class FunctionDefinition(_Open):
    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: StrictBool | None = None


class FunctionTool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


ToolChoiceParam = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(_Open):
    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    strict: StrictBool | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TextResponseFormat(_Open):
    type: Literal["text"]


class JsonObjectResponseFormat(_Open):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(_Open):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormatParam = Annotated[
    TextResponseFormat | JsonObjectResponseFormat | JsonSchemaResponseFormat,
    Field(discriminator="type"),
]


class ChatCompletionRequest(RequestModel):
    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: LogitBias = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    response_format: ResponseFormatParam | None = None
    seed: int | None = None
    stop: StopParam = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoiceParam | None = None
    parallel_tool_calls: StrictBool | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _check_tools(self) -> ChatCompletionRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tool function names must be unique")
        if isinstance(self.tool_choice, NamedToolChoice):
            if self.tool_choice.function.name not in names:
                raise ValueError("tool_choice names a function that is not in 'tools'")
        elif self.tool_choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs at least one tool in 'tools'")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when 'stream' is true")
        return self

    @property
    def output_token_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)
