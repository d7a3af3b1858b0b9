"""The provider adapter interface: one object per deployment (replica)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from airlock.errors import UnsupportedParameterError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    EmbeddingResponse,
)

__all__ = ["CallContext", "Capabilities", "Provider"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    chat: bool = False
    completions: bool = False
    embeddings: bool = False
    tools: bool = False
    json_mode: bool = False
    json_schema: bool = False


@dataclass(frozen=True, slots=True)
class CallContext:
    """Metadata for one upstream call. ``model`` is the name the upstream knows."""

    request_id: str
    model: str


class Provider(ABC):
    """A deployment of a model. Methods a provider lacks refuse with a clear 400."""

    capabilities: Capabilities

    async def start(self) -> None:  # noqa: B027 - optional hook, most providers need none
        """Acquire resources (load a model, open a connection pool)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired."""

    @abstractmethod
    async def check_health(self) -> bool:
        """Cheap liveness check used by active health checking."""

    async def chat(self, req: ChatCompletionRequest, ctx: CallContext) -> ChatCompletion:
        raise _unsupported("chat completions", ctx)

    def chat_stream(
        self, req: ChatCompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        raise _unsupported("chat completions", ctx)

    async def completion(self, req: CompletionRequest, ctx: CallContext) -> Completion:
        raise _unsupported("text completions", ctx)

    def completion_stream(
        self, req: CompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[Completion, None]:
        raise _unsupported("text completions", ctx)

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> EmbeddingResponse:
        raise _unsupported("embeddings", ctx)


def _unsupported(what: str, ctx: CallContext) -> UnsupportedParameterError:
    return UnsupportedParameterError(
        f"The model '{ctx.model}' does not support {what}.", param="model"
    )
