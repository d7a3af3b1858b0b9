"""The inspect stage: run the sensitive-data detector over everything a request sends.

Every piece of caller text is inspected: message content (text parts), tool-call
arguments, tool results, and the ``prompt`` / ``input`` of completions and embeddings.
The verdict keeps entity types and counts for the audit record; spans and values stay
inside this request (invariant 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread

from airlock.privacy.detector import Detector, Verdict
from airlock.protocol.chat import ChatCompletionRequest, TextPart
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest

__all__ = ["Inspector", "chat_texts", "completion_texts", "embedding_texts"]


def chat_texts(req: ChatCompletionRequest) -> list[str]:
    out: list[str] = []
    for msg in req.messages:
        if isinstance(msg.content, str):
            out.append(msg.content)
        elif msg.content is not None:
            out.extend(p.text for p in msg.content if isinstance(p, TextPart))
        for call in msg.tool_calls or ():
            out.append(call.function.arguments)
    return out


def completion_texts(req: CompletionRequest) -> list[str]:
    return [p for p in req.prompts() if isinstance(p, str)]


def embedding_texts(req: EmbeddingRequest) -> list[str]:
    return [x for x in req.inputs() if isinstance(x, str)]


class Inspector:
    """Runs the detector, off the event loop when the text is long."""

    def __init__(self, detector: Detector, thread_threshold_chars: int) -> None:
        self._detector = detector
        self._threshold = thread_threshold_chars

    @property
    def detector(self) -> Detector:
        return self._detector

    async def inspect(self, texts: Sequence[str]) -> Verdict:
        texts = [t for t in texts if t]
        if not texts:
            return Verdict(sensitive=False)
        if sum(len(t) for t in texts) < self._threshold:
            return self._detector.detect_many(texts)
        return await anyio.to_thread.run_sync(self._detector.detect_many, texts)
