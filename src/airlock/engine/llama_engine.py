"""The embedded engine: SmolLM2 (or any chat GGUF) served in-process by llama.cpp.

Usage::

    engine = EmbeddedEngine(smollm2_gguf(), EngineSettings(n_ctx=8192, n_threads=2))
    await engine.start()                 # loads the model once, starts the worker
    async for event in engine.stream_chat(job):
        ...                              # TextDelta / ToolCall* / Finished (always last)
    await engine.aclose()

Validation errors (:class:`~airlock.errors.BadRequestError`,
:class:`~airlock.errors.ContextLengthExceededError`, ...) are raised by the first
``__anext__``, before any event. Stopping iteration early (``aclose()`` or cancelling the
task) stops generation within a token and lets the next queued job run.

The model is a GGUF path or a :data:`ModelSource`: a zero-argument callable returning a
context manager that yields the path. The engine enters it when it starts and exits it
after the model is freed (also when loading fails), so a sealed model can be decrypted into
memory that lives exactly as long as the engine (see ``airlock.providers.embedded``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path

from airlock.engine.llama_model import LlamaModel
from airlock.engine.planner import Planner
from airlock.engine.scheduler import JobReport, Scheduler
from airlock.engine.settings import EngineSettings
from airlock.engine.types import ChatJob, CompletionJob, EngineEvent
from airlock.errors import ServiceUnavailableError

__all__ = ["EmbeddedEngine", "ModelSource"]

ModelSource = Callable[[], AbstractContextManager[Path]]
"""Gives the GGUF path for the engine's lifetime (entered on start, exited on close)."""


class EmbeddedEngine:
    def __init__(
        self,
        model: Path | ModelSource,
        settings: EngineSettings | None = None,
        *,
        on_job_report: Callable[[JobReport], None] | None = None,
    ) -> None:
        """``on_job_report`` receives metadata per job on the worker thread (keep it cheap)."""
        self._source: ModelSource
        if isinstance(model, Path):
            path = model
            self._source = lambda: nullcontext(path)
        else:
            self._source = model
        self._settings = settings or EngineSettings()
        self._on_report = on_job_report
        self._model: LlamaModel | None = None
        self._planner: Planner | None = None
        self._scheduler: Scheduler | None = None
        self._held = ExitStack()

    @property
    def model_id(self) -> str:
        return self._settings.model_id

    @property
    def context_window(self) -> int:
        return self._loaded().n_ctx

    @property
    def vocab_size(self) -> int:
        return self._loaded().n_vocab

    @property
    def queued_jobs(self) -> int:
        """Jobs waiting for the worker (not counting the one running)."""
        return self._scheduler.queued_jobs if self._scheduler is not None else 0

    @property
    def ready(self) -> bool:
        return self._scheduler is not None

    async def start(self) -> None:
        """Load the model (off the event loop) and start the worker thread. Idempotent."""
        if self._scheduler is not None:
            return
        model = await asyncio.to_thread(self._load)
        self._model = model
        self._planner = Planner(model)
        scheduler = Scheduler(
            model, max_queued_jobs=self._settings.max_queued_jobs, on_report=self._on_report
        )
        scheduler.start()
        self._scheduler = scheduler

    def _load(self) -> LlamaModel:
        with ExitStack() as stack:
            path = stack.enter_context(self._source())
            model = LlamaModel(path, self._settings)
            # Loaded: the source (e.g. a memfd with decrypted weights) now lives until aclose.
            self._held.enter_context(stack.pop_all())
            return model

    async def aclose(self) -> None:
        """Cancel the running job, fail queued ones, stop the worker, free the model and
        release its source."""
        scheduler, model = self._scheduler, self._model
        self._scheduler = self._planner = self._model = None
        try:
            if scheduler is not None:
                await asyncio.to_thread(scheduler.close)
            if model is not None:
                model.close()
        finally:
            self._held.close()

    # --- tokenizer access ---------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return self._loaded().tokenize(text, add_bos=False)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def detokenize(self, tokens: list[int]) -> str:
        return self._loaded().detokenize(tokens)

    def check_logit_bias(self, bias: Mapping[int, float] | None) -> None:
        """Raise BadRequestError (param ``logit_bias``) for ids outside the vocabulary."""
        self._ready()[0].check_logit_bias(bias)

    # --- generation ---------------------------------------------------------------------

    async def stream_chat(self, job: ChatJob) -> AsyncIterator[EngineEvent]:
        planner, scheduler = self._ready()
        plan = await asyncio.to_thread(planner.chat, job)
        async for event in scheduler.events(scheduler.submit(plan)):
            yield event

    async def stream_completion(self, job: CompletionJob) -> AsyncIterator[EngineEvent]:
        planner, scheduler = self._ready()
        plan = await asyncio.to_thread(planner.completion, job)
        async for event in scheduler.events(scheduler.submit(plan)):
            yield event

    def _loaded(self) -> LlamaModel:
        if self._model is None:
            raise ServiceUnavailableError(f"The model '{self.model_id}' is not loaded yet.")
        return self._model

    def _ready(self) -> tuple[Planner, Scheduler]:
        if self._planner is None or self._scheduler is None:
            raise ServiceUnavailableError(f"The model '{self.model_id}' is not loaded yet.")
        return self._planner, self._scheduler
