"""OpenAI chat requests → Anthropic Messages requests, and Anthropic messages → OpenAI replies.

See :mod:`airlock.providers.anthropic` for the documented mapping. Error messages here
name parameters (``messages[2].content[0]``), never the values the caller sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field

from airlock.errors import BadRequestError, UnsupportedParameterError, UpstreamError
from airlock.protocol.chat import (
    ChatCompletionRequest,
    ChatMessage,
    JsonObjectResponseFormat,
    JsonSchemaResponseFormat,
    NamedToolChoice,
    TextPart,
)
from airlock.protocol.common import normalise_stop
from airlock.protocol.responses import (
    ChatChoice,
    ChatCompletion,
    FinishReason,
    ResponseMessage,
    ToolCallFunctionOut,
    ToolCallOut,
    Usage,
    now,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "JSON_OBJECT_TOOL",
    "AnthropicMessage",
    "AnthropicUsage",
    "JsonTool",
    "Translation",
    "build_request",
    "finish_reason",
    "to_chat_completion",
]

DEFAULT_MAX_TOKENS = 4096
JSON_OBJECT_TOOL = "json_response"
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.+)$", re.DOTALL)
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


@dataclass(frozen=True, slots=True)
class JsonTool:
    """The forced tool that carries a JSON-mode answer; its input becomes the content."""

    name: str
    # A non-object schema is wrapped as {"value": …} (tool input must be an object).
    wrapped: bool
    validator: Draft202012Validator | None  # set for json_schema with strict=true

    def content(self, tool_input: object) -> str:
        if self.wrapped and isinstance(tool_input, dict):
            tool_input = tool_input.get("value")
        return orjson.dumps(tool_input).decode()

    def check(self, content: str, deployment: str) -> None:
        """Refuse a final answer that is not JSON or breaks a strict schema."""
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise _bad_json(deployment) from None
        if self.validator is not None and not self.validator.is_valid(value):
            raise _bad_json(deployment)


@dataclass(frozen=True, slots=True)
class Translation:
    body: dict[str, Any]
    json_tool: JsonTool | None


def _bad_json(deployment: str) -> UpstreamError:
    return UpstreamError(
        f"The upstream deployment '{deployment}' did not return JSON matching the "
        "requested response_format.",
        retryable=True,
        code="upstream_invalid_json",
    )


def tool_id(value: str) -> str:
    """Anthropic ids allow ``[A-Za-z0-9_-]`` only; map others the same way both ways."""
    return _BAD_ID_CHARS.sub("_", value) or "call"


# --- request -----------------------------------------------------------------------------


def build_request(
    req: ChatCompletionRequest, model: str, *, default_max_tokens: int, stream: bool
) -> Translation:
    _refuse_unsupported(req)
    system, messages = _messages(req.messages)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": req.output_token_limit or default_max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = system
    # Anthropic refuses stop sequences that are only whitespace.
    stop = [s for s in normalise_stop(req.stop) if s.strip()]
    if stop:
        body["stop_sequences"] = stop
    if req.temperature is not None:
        # OpenAI's range is 0–2, Anthropic's 0–1: clamp rather than refuse.
        body["temperature"] = min(req.temperature, 1.0)
    elif req.top_p is not None:
        # Recent Claude models refuse temperature and top_p together; temperature wins.
        body["top_p"] = req.top_p
    if stream:
        body["stream"] = True
    json_tool = _tools(req, body)
    return Translation(body, json_tool)


def _refuse_unsupported(req: ChatCompletionRequest) -> None:
    if req.n is not None and req.n > 1:
        raise UnsupportedParameterError(
            "This model returns one choice per request; 'n' must be 1.", param="n"
        )
    if req.logprobs or req.top_logprobs:
        raise UnsupportedParameterError(
            "This model does not return log probabilities.", param="logprobs"
        )


def _messages(msgs: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(msgs):
        if msg.role in ("system", "developer"):
            # Anthropic has one top-level system prompt; every system message joins it.
            system.extend(_text_blocks(msg, i, allow_images=False))
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        if msg.role == "tool":
            blocks = [_tool_result(msg, i)]
        elif msg.role == "assistant":
            blocks = _text_blocks(msg, i, allow_images=False) + _tool_uses(msg, i)
        else:
            blocks = _text_blocks(msg, i, allow_images=True)
        if not blocks:
            continue  # Anthropic refuses empty turns; an empty one adds nothing
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # roles must alternate: merge
        else:
            out.append({"role": role, "content": blocks})
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant" and last["content"][-1]["type"] == "text":
        # A final assistant turn is a prefill, and Anthropic refuses trailing whitespace there.
        last["content"][-1]["text"] = last["content"][-1]["text"].rstrip()
    if not out:
        raise BadRequestError(
            "messages must contain at least one non-empty user or assistant message.",
            param="messages",
        )
    for turn in out:
        # Tool results must open the user turn that answers the tool calls.
        turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return system, out


def _text_blocks(msg: ChatMessage, i: int, *, allow_images: bool) -> list[dict[str, Any]]:
    content = msg.content
    if content is None:
        return []
    # Anthropic refuses text blocks that are empty or only whitespace.
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text.strip():
                blocks.append({"type": "text", "text": part.text})
        elif part.type == "refusal" and msg.role == "assistant":
            text = (part.model_extra or {}).get("refusal")
            if isinstance(text, str) and text.strip():
                blocks.append({"type": "text", "text": text})
        elif part.type == "image_url" and allow_images:
            blocks.append(_image(part.model_extra or {}, f"messages[{i}].content[{j}]"))
        else:
            raise UnsupportedParameterError(
                f"This model does not accept '{part.type}' content parts in '{msg.role}' messages.",
                param=f"messages[{i}].content[{j}]",
            )
    return blocks


def _image(extra: dict[str, Any], param: str) -> dict[str, Any]:
    spec = extra.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise BadRequestError("An image_url part needs 'image_url.url'.", param=param)
    match = _DATA_URL.match(url)
    if match:
        if match["type"] not in _IMAGE_TYPES:
            raise UnsupportedParameterError(
                "Images must be JPEG, PNG, GIF or WebP.", param=param + ".image_url.url"
            )
        source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise UnsupportedParameterError(
        "Images must be a base64 data URL (data:image/png;base64,…) or an http(s) URL.",
        param=param + ".image_url.url",
    )


def _tool_uses(msg: ChatMessage, i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, call in enumerate(msg.tool_calls or []):
        raw = call.function.arguments.strip() or "{}"
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise BadRequestError(
                "Tool call arguments must be a JSON object.",
                param=f"messages[{i}].tool_calls[{j}].function.arguments",
            )
        blocks.append(
            {"type": "tool_use", "id": tool_id(call.id), "name": call.function.name, "input": args}
        )
    return blocks


def _tool_result(msg: ChatMessage, i: int) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(msg.tool_call_id or "")}
    try:
        text = msg.text()
    except ValueError:
        raise UnsupportedParameterError(
            "Tool results must be text.", param=f"messages[{i}].content"
        ) from None
    if text:
        block["content"] = text
    return block


def _tools(req: ChatCompletionRequest, body: dict[str, Any]) -> JsonTool | None:
    tools: list[dict[str, Any]] = []
    for k, tool in enumerate(req.tools or []):
        fn = tool.function
        schema = dict(fn.parameters)
        if schema.setdefault("type", "object") != "object":
            raise UnsupportedParameterError(
                "Function parameters must be a JSON Schema of type 'object'.",
                param=f"tools[{k}].function.parameters",
            )
        entry: dict[str, Any] = {"name": fn.name, "input_schema": schema}
        if fn.description:
            entry["description"] = fn.description
        tools.append(entry)
    tc = req.tool_choice
    choice: dict[str, Any] | None = None
    if tools and tc is not None:
        if tc == "auto":
            choice = {"type": "auto"}
        elif tc == "none":
            choice = {"type": "none"}  # tools stay: the history may hold tool_use blocks
        elif tc == "required":
            choice = {"type": "any"}
        else:
            choice = {"type": "tool", "name": tc.function.name}
    json_tool = None
    fmt = req.response_format
    # A required or named tool choice already fixes the shape of the answer: JSON mode
    # only governs an answer that is not a tool call.
    forced = tc == "required" or isinstance(tc, NamedToolChoice)
    if isinstance(fmt, JsonObjectResponseFormat | JsonSchemaResponseFormat) and not forced:
        json_tool, definition = _json_tool(fmt, {t["name"] for t in tools})
        offer_tools = bool(tools) and tc != "none"
        tools.append(definition)
        # With tools on offer the model must call one: a real tool or the JSON tool.
        choice = {"type": "any"} if offer_tools else {"type": "tool", "name": json_tool.name}
    if req.parallel_tool_calls is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    return json_tool


def _json_tool(
    fmt: JsonObjectResponseFormat | JsonSchemaResponseFormat, taken: set[str]
) -> tuple[JsonTool, dict[str, Any]]:
    if isinstance(fmt, JsonObjectResponseFormat):
        name, schema, strict = JSON_OBJECT_TOOL, {"type": "object"}, False
        description = "Give your complete answer as a JSON object by calling this tool."
        param = "response_format"
    else:
        spec = fmt.json_schema
        name, schema, strict = spec.name, dict(spec.schema_), bool(spec.strict)
        description = spec.description or "Give your complete answer by calling this tool."
        param = "response_format.json_schema.name"
    if name in taken:
        raise BadRequestError(
            "The response_format name must differ from every tool name.", param=param
        )
    wrapped = schema.get("type") != "object"
    validator = None
    if strict:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError:
            raise BadRequestError(
                "response_format.json_schema.schema is not a valid JSON Schema.",
                param="response_format.json_schema.schema",
            ) from None
        validator = Draft202012Validator(schema)
    input_schema = (
        {"type": "object", "properties": {"value": schema}, "required": ["value"]}
        if wrapped
        else schema
    )
    definition = {"name": name, "description": description, "input_schema": input_schema}
    return JsonTool(name, wrapped, validator), definition


# --- response ----------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="allow")


class AnthropicUsage(_In):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None

    def prompt_tokens(self) -> int | None:
        """Anthropic counts cached input apart; OpenAI's prompt_tokens includes it."""
        if self.input_tokens is None:
            return None
        return (
            self.input_tokens
            + (self.cache_creation_input_tokens or 0)
            + (self.cache_read_input_tokens or 0)
        )


class AnthropicBlock(_In):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class AnthropicMessage(_In):
    id: str
    type: Literal["message"] = "message"
    model: str = ""
    content: list[AnthropicBlock] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: AnthropicUsage = Field(default_factory=AnthropicUsage)


def finish_reason(stop_reason: str | None, *, tool_calls: bool) -> FinishReason:
    reason = _STOP_REASONS.get(stop_reason or "", "stop")
    if reason == "tool_calls" and not tool_calls:
        return "stop"  # only the JSON tool was called: it is the answer, not a call to run
    return reason


def to_chat_completion(
    msg: AnthropicMessage, json_tool: JsonTool | None, deployment: str
) -> ChatCompletion:
    texts: list[str] = []
    calls: list[ToolCallOut] = []
    json_content: str | None = None
    for block in msg.content:
        if block.type == "text" and block.text:
            texts.append(block.text)
        elif block.type == "tool_use" and block.name:
            if json_tool is not None and block.name == json_tool.name:
                json_content = json_tool.content(block.input)
                continue
            args = orjson.dumps(block.input if block.input is not None else {}).decode()
            calls.append(
                ToolCallOut(
                    id=block.id or "call",
                    function=ToolCallFunctionOut(name=block.name, arguments=args),
                )
            )
        # thinking / redacted_thinking and newer block types carry nothing for OpenAI
    finish = finish_reason(msg.stop_reason, tool_calls=bool(calls))
    content: str | None
    if json_tool is None:
        content = "".join(texts) if texts else None
    else:
        # In JSON mode the tool input is the answer; text around it is not JSON.
        content = json_content
        if finish == "stop" and not calls:
            json_tool.check(content or "", deployment)
    usage = Usage.of(msg.usage.prompt_tokens() or 0, msg.usage.output_tokens or 0)
    return ChatCompletion(
        id=f"chatcmpl-{msg.id}",
        created=now(),
        model=msg.model,
        choices=[
            ChatChoice(
                message=ResponseMessage(content=content, tool_calls=calls or None),
                finish_reason=finish,
            )
        ],
        usage=usage,
    )
