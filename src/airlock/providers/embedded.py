"""Providers backed by in-process engines: llama.cpp chat and the packaged embedding model."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio

from airlock.engine.embeddings import EmbeddingModel
from airlock.engine.types import (
    ChatJob,
    CompletionJob,
    EngineEvent,
    Finished,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStart,
)
from airlock.errors import UnsupportedParameterError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.responses import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Completion,
    CompletionChoice,
    EmbeddingData,
    EmbeddingResponse,
    FinishReason,
    ResponseMessage,
    ToolCallDelta,
    ToolCallFunctionDelta,
    ToolCallFunctionOut,
    ToolCallOut,
    Usage,
    new_id,
    now,
)
from airlock.providers.base import CallContext, Capabilities, Provider
from airlock.providers.embedded_jobs import chat_job, completion_job

__all__ = ["ChatEngine", "EmbeddedChatProvider", "EmbeddedEmbeddingProvider", "SealedModel"]


@dataclass(frozen=True, slots=True)
class SealedModel:
    """Deployment options ``sealed_model_path`` plus exactly one key source, named like the
    seal CLI's flags: ``key_file``, ``key_env`` or ``key_command``.

    :meth:`source` is a model source for
    :class:`~airlock.engine.llama_engine.EmbeddedEngine`: it decrypts the sealed GGUF into a
    ``memfd_create`` descriptor, never onto disk. The key is read when the engine starts
    (so a key command runs then, not at config load); the memfd stays open while the engine
    holds the model and is closed when the engine closes. Sealing errors keep their type
    and name the file, never the key.
    """

    path: Path
    key_kind: Literal["file", "env", "command"]
    key_ref: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, where: str) -> SealedModel | None:
        """None without ``sealed_model_path``; :class:`ConfigError` when options conflict."""
        from airlock.config import ConfigError

        kinds: list[tuple[Literal["file", "env", "command"], str]] = [
            ("file", "key_file"),
            ("env", "key_env"),
            ("command", "key_command"),
        ]
        keys = [(kind, str(options[name])) for kind, name in kinds if options.get(name)]
        path = options.get("sealed_model_path")
        if not path:
            if keys:
                raise ConfigError(f"{where}: key_file/key_env/key_command need sealed_model_path")
            return None
        if options.get("model_path"):
            raise ConfigError(f"{where}: give model_path or sealed_model_path, not both")
        if len(keys) != 1:
            raise ConfigError(
                f"{where}: sealed_model_path needs exactly one of key_file, key_env, key_command"
            )
        return cls(Path(str(path)), keys[0][0], keys[0][1])

    @contextlib.contextmanager
    def source(self) -> Iterator[Path]:
        from airlock.deploy.errors import SealError
        from airlock.deploy.sealed import KekSource, load_kek, sealed_memfd_path

        with contextlib.ExitStack() as stack:
            try:
                kek = load_kek(KekSource(self.key_kind, self.key_ref))
                plain = stack.enter_context(sealed_memfd_path(self.path, kek))
            except SealError as exc:
                raise type(exc)(f"sealed model {str(self.path)!r}: {exc.message}") from exc
            yield Path(plain)


class ChatEngine(Protocol):
    def stream_chat(self, job: ChatJob) -> AsyncIterator[EngineEvent]: ...

    def stream_completion(self, job: CompletionJob) -> AsyncIterator[EngineEvent]: ...


async def _aclose(events: AsyncIterator[EngineEvent]) -> None:
    """Stop the engine's generator: it cancels the job within a token."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def _chunk(
    cid: str, created: int, model: str, delta: ChatDelta, finish: Finished | None = None
) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=cid,
        created=created,
        model=model,
        choices=[
            ChatChunkChoice(delta=delta, finish_reason=finish.finish_reason if finish else None)
        ],
    )


class EmbeddedChatProvider(Provider):
    """The llama.cpp engine as a deployment. ``engine`` is owned by the app, not by us."""

    capabilities = Capabilities(
        chat=True, completions=True, tools=True, json_mode=True, json_schema=True
    )

    def __init__(self, load: Callable[[], Awaitable[ChatEngine]]) -> None:
        self._load = load
        self._loaded: ChatEngine | None = None

    async def start(self) -> None:
        self._loaded = await self._load()

    @property
    def _engine(self) -> ChatEngine:
        if self._loaded is None:
            raise RuntimeError("provider used before start()")
        return self._loaded

    async def check_health(self) -> bool:
        return self._loaded is not None

    async def chat_stream(
        self, req: ChatCompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        job = chat_job(req, ctx.model)
        cid, created = new_id("chatcmpl"), now()
        events = self._engine.stream_chat(job)
        started = False
        try:
            async for ev in events:
                if not started:
                    # The role chunk goes out with the first event, so that errors the
                    # engine raises before generating still become a plain 4xx response.
                    started = True
                    yield _chunk(cid, created, ctx.model, ChatDelta(role="assistant", content=""))
                if isinstance(ev, TextDelta):
                    if ev.text:
                        yield _chunk(cid, created, ctx.model, ChatDelta(content=ev.text))
                elif isinstance(ev, ToolCallStart):
                    call = ToolCallDelta(
                        index=ev.index,
                        id=ev.id,
                        type="function",
                        function=ToolCallFunctionDelta(name=ev.name, arguments=""),
                    )
                    yield _chunk(cid, created, ctx.model, ChatDelta(tool_calls=[call]))
                elif isinstance(ev, ToolCallArgumentsDelta):
                    call = ToolCallDelta(
                        index=ev.index, function=ToolCallFunctionDelta(arguments=ev.delta)
                    )
                    yield _chunk(cid, created, ctx.model, ChatDelta(tool_calls=[call]))
                else:
                    yield _chunk(cid, created, ctx.model, ChatDelta(), ev)
                    yield ChatCompletionChunk(
                        id=cid,
                        created=created,
                        model=ctx.model,
                        choices=[],
                        usage=Usage.of(ev.prompt_tokens, ev.completion_tokens),
                    )
        finally:
            await _aclose(events)

    async def chat(self, req: ChatCompletionRequest, ctx: CallContext) -> ChatCompletion:
        text: list[str] = []
        calls: dict[int, tuple[str, str, list[str]]] = {}
        finished: Finished | None = None
        events = self._engine.stream_chat(chat_job(req, ctx.model))
        try:
            async for ev in events:
                if isinstance(ev, TextDelta):
                    text.append(ev.text)
                elif isinstance(ev, ToolCallStart):
                    calls[ev.index] = (ev.id, ev.name, [])
                elif isinstance(ev, ToolCallArgumentsDelta):
                    calls[ev.index][2].append(ev.delta)
                else:
                    finished = ev
        finally:
            await _aclose(events)
        assert finished is not None, "engine ended without a Finished event"
        tool_calls = [
            ToolCallOut(id=cid, function=ToolCallFunctionOut(name=name, arguments="".join(args)))
            for _, (cid, name, args) in sorted(calls.items())
        ]
        message = ResponseMessage(
            content="".join(text) if text or not tool_calls else None,
            tool_calls=tool_calls or None,
        )
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=now(),
            model=ctx.model,
            choices=[ChatChoice(message=message, finish_reason=finished.finish_reason)],
            usage=Usage.of(finished.prompt_tokens, finished.completion_tokens),
        )

    async def completion_stream(
        self, req: CompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[Completion, None]:
        cid, created = new_id("cmpl"), now()
        prompt_tokens = completion_tokens = 0
        for index, prompt in enumerate(req.prompts()):
            events = self._engine.stream_completion(completion_job(req, prompt, ctx.model))
            try:
                async for ev in events:
                    if isinstance(ev, TextDelta):
                        if ev.text:
                            yield Completion(
                                id=cid,
                                created=created,
                                model=ctx.model,
                                choices=[CompletionChoice(index=index, text=ev.text)],
                            )
                    elif isinstance(ev, Finished):
                        prompt_tokens += ev.prompt_tokens
                        completion_tokens += ev.completion_tokens
                        yield Completion(
                            id=cid,
                            created=created,
                            model=ctx.model,
                            choices=[
                                CompletionChoice(
                                    index=index, text="", finish_reason=ev.finish_reason
                                )
                            ],
                        )
            finally:
                await _aclose(events)
        yield Completion(
            id=cid,
            created=created,
            model=ctx.model,
            choices=[],
            usage=Usage.of(prompt_tokens, completion_tokens),
        )

    async def completion(self, req: CompletionRequest, ctx: CallContext) -> Completion:
        texts: dict[int, list[str]] = {}
        finish: dict[int, FinishReason] = {}
        usage = Usage()
        async for chunk in self.completion_stream(req, ctx):
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                texts.setdefault(choice.index, []).append(choice.text)
                if choice.finish_reason is not None:
                    finish[choice.index] = choice.finish_reason
        return Completion(
            id=new_id("cmpl"),
            created=now(),
            model=ctx.model,
            choices=[
                CompletionChoice(
                    index=i,
                    text="".join(parts),
                    finish_reason=finish.get(i, "stop"),
                )
                for i, parts in sorted(texts.items())
            ],
            usage=usage,
        )


class EmbeddedEmbeddingProvider(Provider):
    """The packaged sentence-embedding model, run in worker threads."""

    capabilities = Capabilities(embeddings=True)

    def __init__(
        self, load: Callable[[], Awaitable[EmbeddingModel]], limiter: anyio.CapacityLimiter
    ) -> None:
        self._load = load
        self._loaded: EmbeddingModel | None = None
        self._limiter = limiter

    async def start(self) -> None:
        self._loaded = await self._load()

    @property
    def _engine(self) -> EmbeddingModel:
        if self._loaded is None:
            raise RuntimeError("provider used before start()")
        return self._loaded

    async def check_health(self) -> bool:
        return self._loaded is not None

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> EmbeddingResponse:
        if req.dimensions is not None and not self._engine.supports_dimensions:
            raise UnsupportedParameterError(
                f"The model '{ctx.model}' does not support the 'dimensions' parameter; "
                "its embeddings have a fixed size.",
                param="dimensions",
            )
        inputs = req.inputs()
        out = await anyio.to_thread.run_sync(self._engine.embed, inputs, limiter=self._limiter)
        vectors = out.vectors
        data = [
            EmbeddingData(
                index=i,
                embedding=(
                    base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
                    if req.encoding_format == "base64"
                    else vec.tolist()
                ),
            )
            for i, vec in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data,
            model=ctx.model,
            usage={"prompt_tokens": out.prompt_tokens, "total_tokens": out.prompt_tokens},
        )
