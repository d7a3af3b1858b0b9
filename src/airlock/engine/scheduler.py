"""The worker thread that owns the llama.cpp context, and its FIFO job queue.

One thread runs every job, one at a time, in arrival order: llama.cpp calls never run on
the event loop, and no request can starve another. Events cross back to the event loop
through a per-job deque: the worker appends and wakes the loop (``call_soon_threadsafe``)
only when no wake-up is already pending, and the consumer drains everything queued per
wake-up, merging consecutive text deltas into one. A consumer that keeps up pays one
wake-up per token; one that lags behind pays one per batch, not per token. The worker
polls each job's cancel flag before every token, so a consumer that goes away
(``aclose()``, task cancellation on client disconnect) stops its generation within a token
and frees the worker for the next job.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from airlock.engine.generation import generate
from airlock.engine.llama_model import LlamaModel
from airlock.engine.plan import Plan
from airlock.engine.types import EngineEvent, Finished, TextDelta
from airlock.errors import AirlockError, InternalServerError, ServiceUnavailableError

__all__ = ["JobReport", "Scheduler"]

_log = logging.getLogger(__name__)

Outcome = Literal["finished", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class JobReport:
    """Metadata about one job (never content), delivered on the worker thread."""

    job_id: int
    outcome: Outcome
    prompt_tokens: int
    completion_tokens: int
    queued_seconds: float
    run_seconds: float
    # Upper bound on tokens sampled after cancellation was requested (None if not cancelled).
    tokens_after_cancel: int | None


@dataclass(frozen=True, slots=True)
class _Failure:
    error: AirlockError


class _Ticket:
    def __init__(self, job_id: int, plan: Plan, loop: asyncio.AbstractEventLoop) -> None:
        self.job_id = job_id
        self.plan = plan
        self.loop = loop
        # Appended on the worker thread, popped on the loop (deque ends are thread-safe).
        self._items: collections.deque[EngineEvent | _Failure] = collections.deque()
        # Set by the worker when it schedules a wake-up, cleared on the loop when it runs.
        self._wake_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self.enqueued_at = time.monotonic()
        self._cancel = threading.Event()
        self.cancel_reason: AirlockError | None = None
        self.polls = 0
        self.polls_at_cancel: int | None = None
        self.done = False

    def cancel(self, reason: AirlockError | None = None) -> None:
        """Ask the worker to stop; ``reason`` is delivered to a still-listening consumer."""
        if self._cancel.is_set() or self.done:
            return
        self.cancel_reason = reason
        self.polls_at_cancel = self.polls
        self._cancel.set()

    def cancelled(self) -> bool:
        self.polls += 1
        return self._cancel.is_set()

    def push(self, item: EngineEvent | _Failure, *, wake: bool = True) -> None:
        """Queue ``item`` for the consumer (any thread; in practice the worker). With
        ``wake=False`` the consumer sees it at the next :meth:`wake` (or waking push)."""
        self._items.append(item)
        if wake:
            self.wake()

    def wake(self) -> None:
        """Wake the consumer if anything is queued and no wake-up is pending."""
        # Items are queued before the flag is read: a pending wake-up has not yet run its
        # flag reset, so the consumer it wakes (or that is already awake) will see them.
        if self._wake_pending or not self._items:
            return
        self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            # The consumer's event loop is closed: nobody is listening any more.
            self.cancel()

    def _wake(self) -> None:
        # On the loop. Reset first: anything pushed from here on schedules a new wake-up.
        self._wake_pending = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[EngineEvent | _Failure]:
        """Everything queued so far, in order; waits until there is at least one item."""
        while not self._items:
            waiter = self.loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        # A snapshot of the length: the worker may append while we pop.
        return [self._items.popleft() for _ in range(len(self._items))]


class Scheduler:
    def __init__(
        self,
        model: LlamaModel,
        *,
        max_queued_jobs: int,
        on_report: Callable[[JobReport], None] | None = None,
    ) -> None:
        self._model = model
        self._max_queued = max_queued_jobs
        self._on_report = on_report
        self._queue: queue.SimpleQueue[_Ticket | None] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._current: _Ticket | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="airlock-llama", daemon=True)

    @property
    def queued_jobs(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def submit(self, plan: Plan) -> _Ticket:
        """Queue a job (call on the event loop); its events come from :meth:`events`."""
        if self._closed:
            raise ServiceUnavailableError("The embedded engine is shutting down.")
        if self._queue.qsize() >= self._max_queued:
            raise ServiceUnavailableError(
                "The embedded engine's queue is full; retry shortly.", headers={"retry-after": "1"}
            )
        ticket = _Ticket(next(self._ids), plan, asyncio.get_running_loop())
        self._queue.put(ticket)
        return ticket

    async def events(self, ticket: _Ticket) -> AsyncIterator[EngineEvent]:
        finished = False
        try:
            while not finished:
                for item in _merge_text(await ticket.take()):
                    if isinstance(item, _Failure):
                        raise item.error
                    finished = isinstance(item, Finished)
                    yield item
        finally:
            if not finished:
                # aclose(), task cancellation or an error: stop generating for nobody.
                ticket.cancel()

    def close(self) -> None:
        """Stop the worker (blocking): the running job is cancelled, queued ones fail."""
        self._closed = True
        shutting_down = ServiceUnavailableError("The embedded engine is shutting down.")
        current = self._current
        if current is not None:
            current.cancel(shutting_down)
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()
        while True:
            try:
                ticket = self._queue.get_nowait()
            except queue.Empty:
                break
            if ticket is not None:
                ticket.push(_Failure(shutting_down))

    def _work(self) -> None:
        while True:
            ticket = self._queue.get()
            if ticket is None:
                return
            if self._closed:
                ticket.push(_Failure(ServiceUnavailableError("The embedded engine is closed.")))
                continue
            self._current = ticket
            try:
                self._run(ticket)
            finally:
                self._current = None
                ticket.done = True

    def _run(self, ticket: _Ticket) -> None:
        started = time.monotonic()
        outcome: Outcome = "finished"
        completion = 0
        # Finished is held back until the job's report is out, so a consumer that saw the end
        # of its job can rely on the report having been delivered.
        last: list[Finished] = []

        def emit(event: EngineEvent) -> None:
            if isinstance(event, Finished):
                last.append(event)
            else:
                # Delivered by generate's wake-up right before the next decode (or by the
                # pushes below once the job ends): see LlamaModel.eval.
                ticket.push(event, wake=False)

        if ticket.cancelled():
            outcome = "cancelled"
        else:
            try:
                result = generate(self._model, ticket.plan, ticket.cancelled, emit, ticket.wake)
            except Exception as exc:  # noqa: BLE001 - forwarded to the waiting consumer
                outcome = "failed"
                # Only the exception type is logged: llama.cpp messages may quote input.
                _log.error("embedded engine job failed", extra={"error": type(exc).__name__})
                error = (
                    exc
                    if isinstance(exc, AirlockError)
                    else InternalServerError("The embedded engine failed while generating.")
                )
                ticket.push(_Failure(error))
            else:
                completion = result.completion_tokens
                if result.finish_reason is None:
                    outcome = "cancelled"
        if outcome == "cancelled" and ticket.cancel_reason is not None:
            ticket.push(_Failure(ticket.cancel_reason))
        after_cancel = None
        if ticket.polls_at_cancel is not None:
            after_cancel = max(0, ticket.polls - ticket.polls_at_cancel - 1)
        report = JobReport(
            job_id=ticket.job_id,
            outcome=outcome,
            prompt_tokens=len(ticket.plan.prompt_tokens),
            completion_tokens=completion,
            queued_seconds=started - ticket.enqueued_at,
            run_seconds=time.monotonic() - started,
            tokens_after_cancel=after_cancel,
        )
        try:
            if self._on_report is not None:
                self._on_report(report)
        finally:
            for event in last:
                ticket.push(event)
            ticket.wake()  # events still held back (a cancelled job's last text, say)


def _merge_text(items: list[EngineEvent | _Failure]) -> list[EngineEvent | _Failure]:
    """Join runs of text deltas: a consumer that fell behind catches up with one event
    (one SSE chunk, one socket write) instead of one per token."""
    if len(items) < 2:
        return items
    out: list[EngineEvent | _Failure] = []
    for item in items:
        last = out[-1] if out else None
        if isinstance(item, TextDelta) and isinstance(last, TextDelta):
            out[-1] = TextDelta(last.text + item.text)
        else:
            out.append(item)
    return out
