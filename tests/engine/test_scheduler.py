"""Scheduling with the real model: fairness, cancellation, concurrency, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import cast

import pytest

from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.model_files import smollm2_gguf
from airlock.engine.plan import Plan
from airlock.engine.scheduler import JobReport, _Ticket
from airlock.engine.settings import EngineSettings
from airlock.engine.types import (
    ChatJob,
    ChatTurn,
    CompletionJob,
    Finished,
    SamplingParams,
    TextDelta,
    ToolCallArgumentsDelta,
)
from airlock.errors import ServiceUnavailableError
from tests.engine.helpers import collect

LONG = SamplingParams(max_tokens=400, temperature=0.0, logit_bias={0: -100.0, 2: -100.0})


def _story(n: int) -> ChatJob:
    return ChatJob((ChatTurn("user", f"Tell story number {n} about a fox."),), LONG)


def _report(reports: list[JobReport], before: int, outcome: str) -> list[JobReport]:
    return [r for r in reports[before:] if r.outcome == outcome]


def test_cancelled_stream_stops_within_a_token_and_frees_the_worker(
    engine: EmbeddedEngine, job_reports: list[JobReport]
) -> None:
    before = len(job_reports)

    async def scenario() -> tuple[int, Finished]:
        stream = engine.stream_chat(_story(1))
        seen = 0
        async for event in stream:
            assert isinstance(event, TextDelta)
            seen += 1
            if seen == 3:
                break
        # Queue the next job while the first is (possibly) still running, then hang up.
        nxt = asyncio.ensure_future(
            collect(
                engine,
                ChatJob((ChatTurn("user", "Hi"),), SamplingParams(max_tokens=5, temperature=0.0)),
            )
        )
        await stream.aclose()  # type: ignore[attr-defined]
        result = await nxt
        return seen, result.finished

    seen, finished = asyncio.run(scenario())
    assert finished.completion_tokens <= 5
    cancelled = _report(job_reports, before, "cancelled")
    assert len(cancelled) == 1
    assert cancelled[0].tokens_after_cancel is not None
    assert cancelled[0].tokens_after_cancel <= 2
    # Far fewer than the 400 tokens asked for were generated.
    assert cancelled[0].completion_tokens < 50
    assert seen == 3


def test_task_cancellation_also_stops_generation(
    engine: EmbeddedEngine, job_reports: list[JobReport]
) -> None:
    before = len(job_reports)

    async def scenario() -> None:
        got_first = asyncio.Event()

        async def consume() -> None:
            async for _ in engine.stream_chat(_story(2)):
                got_first.set()

        task = asyncio.ensure_future(consume())
        await got_first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The worker is free again: a short job completes.
        await collect(engine, CompletionJob("Hello", SamplingParams(max_tokens=3, temperature=0.0)))

    asyncio.run(scenario())
    cancelled = _report(job_reports, before, "cancelled")
    assert len(cancelled) == 1
    assert cancelled[0].tokens_after_cancel is not None
    assert cancelled[0].tokens_after_cancel <= 2
    assert cancelled[0].completion_tokens < 400


def test_concurrent_jobs_all_complete_in_arrival_order(
    engine: EmbeddedEngine, job_reports: list[JobReport]
) -> None:
    before = len(job_reports)

    async def scenario() -> list[Finished]:
        jobs = [
            ChatJob(
                (ChatTurn("user", f"Give me fact number {i} about the moon."),),
                SamplingParams(max_tokens=8, temperature=0.0),
            )
            for i in range(8)
        ]
        results = await asyncio.gather(*(collect(engine, j) for j in jobs))
        return [r.finished for r in results]

    finished = asyncio.run(scenario())
    assert len(finished) == 8
    assert all(1 <= f.completion_tokens <= 8 for f in finished)
    reports = job_reports[before:]
    assert [r.outcome for r in reports] == ["finished"] * 8
    # FIFO: jobs ran in the order they were queued (ids are assigned at submission).
    assert [r.job_id for r in reports] == sorted(r.job_id for r in reports)


def test_generation_runs_on_the_worker_thread_and_the_loop_keeps_turning() -> None:
    threads: list[str] = []

    def on_report(report: JobReport) -> None:
        threads.append(threading.current_thread().name)

    async def scenario() -> tuple[int, int]:
        eng = EmbeddedEngine(
            smollm2_gguf(), EngineSettings(n_ctx=256, n_threads=1), on_job_report=on_report
        )
        await eng.start()
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        tick_task = asyncio.ensure_future(ticker())
        try:
            job = ChatJob(
                (ChatTurn("user", "Describe the sea."),),
                SamplingParams(max_tokens=30, temperature=0.0),
            )
            result = await collect(eng, job)
        finally:
            done = True
            await tick_task
            await eng.aclose()
        return ticks, result.finished.completion_tokens

    ticks, tokens = asyncio.run(scenario())
    assert threads == ["airlock-llama"]
    assert threading.current_thread().name != "airlock-llama"
    # While the tokens were generated, the event loop ran the ticker many times in between.
    assert ticks > tokens


def test_aclose_fails_running_and_queued_jobs_cleanly() -> None:
    async def scenario() -> list[BaseException | object]:
        eng = EmbeddedEngine(smollm2_gguf(), EngineSettings(n_ctx=512, n_threads=1))
        await eng.start()
        first_event = asyncio.Event()

        async def consume(n: int) -> object:
            async for _ in eng.stream_chat(_story(n)):
                first_event.set()
            return "completed"

        tasks = [asyncio.ensure_future(consume(i)) for i in range(3)]
        await first_event.wait()
        await eng.aclose()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scenario())
    assert len(results) == 3
    for result in results:
        assert isinstance(result, ServiceUnavailableError)


def test_unstarted_engine_refuses_work() -> None:
    eng = EmbeddedEngine(smollm2_gguf())

    async def scenario() -> None:
        async for _ in eng.stream_chat(_story(0)):
            pass

    with pytest.raises(ServiceUnavailableError, match="not loaded"):
        asyncio.run(scenario())
    with pytest.raises(ServiceUnavailableError):
        eng.count_tokens("hello")
    assert not eng.ready


def test_full_queue_is_refused() -> None:
    async def scenario() -> None:
        eng = EmbeddedEngine(
            smollm2_gguf(), EngineSettings(n_ctx=512, n_threads=1, max_queued_jobs=1)
        )
        await eng.start()
        try:
            started = asyncio.Event()

            async def consume(n: int) -> None:
                async for _ in eng.stream_chat(_story(n)):
                    started.set()

            running = asyncio.ensure_future(consume(1))
            await started.wait()  # job 1 is on the worker, the queue is empty
            queued = asyncio.ensure_future(consume(2))
            while eng.queued_jobs < 1:
                await asyncio.sleep(0.01)
            with pytest.raises(ServiceUnavailableError, match="queue is full"):
                await consume(3)
            running.cancel()
            queued.cancel()
            await asyncio.gather(running, queued, return_exceptions=True)
        finally:
            await eng.aclose()

    asyncio.run(scenario())


def test_a_lagging_consumer_gets_the_same_text_in_fewer_events(engine: EmbeddedEngine) -> None:
    job = ChatJob(
        (ChatTurn("user", "Describe a harbour at dawn."),),
        SamplingParams(max_tokens=40, temperature=0.0, logit_bias={0: -100.0, 2: -100.0}),
    )

    async def lagging() -> list[object]:
        events: list[object] = []
        async for event in engine.stream_chat(job):
            if not events:
                # Block the event loop: the worker keeps generating and queueing meanwhile.
                time.sleep(1.0)
            events.append(event)
        return events

    keeping_up = asyncio.run(collect(engine, job))
    slow = asyncio.run(lagging())
    assert keeping_up.finished.completion_tokens == 40
    assert slow[-1] == keeping_up.finished
    texts = [e for e in slow if isinstance(e, TextDelta)]
    assert "".join(t.text for t in texts) == keeping_up.text
    # Tokens queued while the loop was blocked arrived merged, not one event each.
    per_token = [e for e in keeping_up.events if isinstance(e, TextDelta)]
    assert len(texts) < len(per_token)


def test_ticket_hands_over_every_item_in_order_in_batches() -> None:
    n = 3000

    async def scenario() -> tuple[list[object], int]:
        ticket = _Ticket(1, cast(Plan, None), asyncio.get_running_loop())

        def produce() -> None:
            for i in range(n):
                ticket.push(ToolCallArgumentsDelta(index=0, delta=str(i)))
                if i % 500 == 0:
                    time.sleep(0.002)  # let the consumer catch up and wait again
            ticket.push(Finished(finish_reason="stop", prompt_tokens=1, completion_tokens=n))

        producer = threading.Thread(target=produce)
        producer.start()
        got: list[object] = []
        batches = 0
        while not got or not isinstance(got[-1], Finished):
            got += await asyncio.wait_for(ticket.take(), timeout=10)
            batches += 1
        producer.join()
        return got, batches

    got, batches = asyncio.run(scenario())
    assert [e.delta for e in got[:-1] if isinstance(e, ToolCallArgumentsDelta)] == [
        str(i) for i in range(n)
    ]
    assert isinstance(got[-1], Finished)
    # One wake-up carries many items when the producer is ahead.
    assert batches < n // 10
