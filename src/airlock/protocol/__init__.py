"""Pydantic models of the OpenAI wire format (requests in, responses and chunks out)."""

from airlock.protocol.chat import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionTool,
    JsonSchemaSpec,
    ResponseFormatParam,
    StreamOptions,
    ToolCallParam,
    ToolChoiceParam,
)
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.parsing import parse_request

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "EmbeddingRequest",
    "FunctionTool",
    "JsonSchemaSpec",
    "ResponseFormatParam",
    "StreamOptions",
    "ToolCallParam",
    "ToolChoiceParam",
    "parse_request",
]
