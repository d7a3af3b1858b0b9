"""``POST /v1/completions`` request model (the legacy text completion API)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, model_validator

from airlock.protocol.common import (
    LogitBias,
    Penalty,
    RequestModel,
    StopParam,
    StreamOptions,
)

__all__ = ["CompletionRequest"]

PromptParam = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(RequestModel):
    model: str
    prompt: PromptParam
    best_of: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: StrictBool | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: LogitBias = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    seed: int | None = None
    stop: StopParam = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _check(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) == 0:
            raise ValueError("prompt must not be an empty list")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when 'stream' is true")
        return self

    def prompts(self) -> list[str | tuple[int, ...]]:
        """The prompt(s) as a list: each one text or a tuple of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [tuple(x for x in p if isinstance(x, int))]
        out: list[str | tuple[int, ...]] = []
        for item in p:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, list):
                out.append(tuple(item))
        return out

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)
