"""``POST /v1/embeddings`` request model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from airlock.protocol.common import RequestModel

__all__ = ["EmbeddingRequest"]

_MAX_INPUTS = 2048

EmbeddingInput = (
    str
    | Annotated[list[str], Field(min_length=1, max_length=_MAX_INPUTS)]
    | Annotated[list[int], Field(min_length=1)]
    | Annotated[
        list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1, max_length=_MAX_INPUTS)
    ]
)


class EmbeddingRequest(RequestModel):
    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None

    def inputs(self) -> list[str] | list[list[int]]:
        """The input as a batch: a list of strings or a list of token-id lists."""
        x = self.input
        if isinstance(x, str):
            return [x]
        if all(isinstance(i, str) for i in x):
            return [i for i in x if isinstance(i, str)]
        if all(isinstance(i, int) for i in x):
            return [[i for i in x if isinstance(i, int)]]
        return [i for i in x if isinstance(i, list)]
