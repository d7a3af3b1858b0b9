"""Drive the real engine from synchronous tests and collect what it streamed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.types import (
    ChatJob,
    CompletionJob,
    EngineEvent,
    Finished,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStart,
)


@dataclass
class Outcome:
    events: list[EngineEvent]
    text: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, arguments

    @property
    def finished(self) -> Finished:
        last = self.events[-1]
        assert isinstance(last, Finished)
        return last


def outcome(events: list[EngineEvent]) -> Outcome:
    assert sum(isinstance(e, Finished) for e in events) == 1
    assert isinstance(events[-1], Finished)
    result = Outcome(events=events)
    calls: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, TextDelta):
            result.text += event.text
        elif isinstance(event, ToolCallStart):
            assert event.index == len(calls)
            calls[event.index] = [event.id, event.name, ""]
        elif isinstance(event, ToolCallArgumentsDelta):
            calls[event.index][2] += event.delta
    result.calls = [(c[0], c[1], c[2]) for c in calls.values()]
    return result


async def collect(engine: EmbeddedEngine, job: ChatJob | CompletionJob) -> Outcome:
    stream = engine.stream_chat(job) if isinstance(job, ChatJob) else engine.stream_completion(job)
    return outcome([event async for event in stream])


def run(engine: EmbeddedEngine, job: ChatJob | CompletionJob) -> Outcome:
    return asyncio.run(collect(engine, job))
