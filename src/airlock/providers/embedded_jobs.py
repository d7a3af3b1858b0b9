"""Turning OpenAI chat/completion requests into embedded-engine jobs."""

from __future__ import annotations

from airlock.engine.types import (
    ChatJob,
    ChatTurn,
    CompletionJob,
    JsonObjectFormat,
    JsonSchemaFormat,
    ResponseFormat,
    SamplingParams,
    TextFormat,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from airlock.errors import UnsupportedParameterError
from airlock.protocol.chat import (
    ChatCompletionRequest,
    JsonObjectResponseFormat,
    JsonSchemaResponseFormat,
    NamedToolChoice,
)
from airlock.protocol.common import normalise_stop, parse_logit_bias
from airlock.protocol.completions import CompletionRequest

__all__ = ["chat_job", "completion_job"]


def _sampling(
    *,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    presence_penalty: float | None,
    frequency_penalty: float | None,
    logit_bias: dict[str, float] | None,
    stop: str | list[str] | None,
) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        seed=seed,
        presence_penalty=presence_penalty or 0.0,
        frequency_penalty=frequency_penalty or 0.0,
        logit_bias=parse_logit_bias(logit_bias),
        stop=normalise_stop(stop),
    )


def _refuse_multi(n: int | None, model: str) -> None:
    if n is not None and n != 1:
        raise UnsupportedParameterError(f"The model '{model}' supports only n=1.", param="n")


def _turns(req: ChatCompletionRequest, model: str) -> tuple[ChatTurn, ...]:
    turns: list[ChatTurn] = []
    for i, msg in enumerate(req.messages):
        try:
            text = msg.text()
        except ValueError as exc:
            raise UnsupportedParameterError(
                f"The model '{model}' accepts only text content; messages[{i}] has a "
                f"'{exc.args[0]}' part.",
                param=f"messages[{i}].content",
            ) from None
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in msg.tool_calls or []
        )
        turns.append(
            ChatTurn(
                role=msg.role,
                content=text,
                name=msg.name,
                tool_calls=calls,
                tool_call_id=msg.tool_call_id,
            )
        )
    return tuple(turns)


def _response_format(req: ChatCompletionRequest) -> ResponseFormat:
    fmt = req.response_format
    if isinstance(fmt, JsonObjectResponseFormat):
        return JsonObjectFormat()
    if isinstance(fmt, JsonSchemaResponseFormat):
        spec = fmt.json_schema
        return JsonSchemaFormat(name=spec.name, schema=spec.schema_, strict=bool(spec.strict))
    return TextFormat()


def _tool_choice(req: ChatCompletionRequest) -> ToolChoice:
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice):
        return ToolChoice(mode="function", function_name=choice.function.name)
    if choice is None:
        return ToolChoice(mode="auto" if req.tools else "none")
    return ToolChoice(mode=choice)


def chat_job(req: ChatCompletionRequest, model: str) -> ChatJob:
    _refuse_multi(req.n, model)
    if req.logprobs:
        raise UnsupportedParameterError(
            f"The model '{model}' does not return logprobs.", param="logprobs"
        )
    tools = tuple(
        ToolSpec(
            name=t.function.name,
            description=t.function.description,
            parameters=t.function.parameters,
        )
        for t in req.tools or []
    )
    return ChatJob(
        messages=_turns(req, model),
        sampling=_sampling(
            max_tokens=req.output_token_limit,
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            logit_bias=req.logit_bias,
            stop=req.stop,
        ),
        response_format=_response_format(req),
        tools=tools,
        tool_choice=_tool_choice(req),
        parallel_tool_calls=req.parallel_tool_calls is not False,
    )


def completion_job(
    req: CompletionRequest, prompt: str | tuple[int, ...], model: str
) -> CompletionJob:
    _refuse_multi(req.n, model)
    if req.best_of not in (None, 0, 1):
        raise UnsupportedParameterError(
            f"The model '{model}' supports only best_of=1.", param="best_of"
        )
    if req.logprobs:
        raise UnsupportedParameterError(
            f"The model '{model}' does not return logprobs.", param="logprobs"
        )
    return CompletionJob(
        prompt=prompt,
        sampling=_sampling(
            # OpenAI's legacy default for /v1/completions is 16 tokens.
            max_tokens=16 if req.max_tokens is None else req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            logit_bias=req.logit_bias,
            stop=req.stop,
        ),
        echo=bool(req.echo),
        suffix=req.suffix,
    )
