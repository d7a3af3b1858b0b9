"""The inspect stage: run the sensitive-data detector over everything a request sends.

Two sets of texts are inspected. The main texts are those the ``pseudonymize`` policy
can rewrite: message content (text parts), tool-call arguments, tool results, and the
``prompt`` / ``input`` of completions and embeddings. The other texts are every other
string the upstream would receive (``user``, message ``name``, tool definitions,
``response_format`` schemas, ``stop``, refusals, and fields airlock does not know but
forwards, with their keys); data found there makes the request sensitive, and, since
it cannot be replaced by placeholders, keeps it on the self-hosted tier.
The verdict keeps entity types and counts for the audit record; spans and values stay
inside this request (invariant 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio.to_thread
from pydantic import BaseModel

from airlock.privacy.detector import Detector, Verdict
from airlock.protocol.chat import ChatCompletionRequest, TextPart
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest

__all__ = [
    "Inspector",
    "chat_other_texts",
    "chat_texts",
    "completion_texts",
    "embedding_texts",
    "other_texts",
]

# Values under these keys are protocol vocabulary (checked by the schema) or binary
# payloads (images, audio, files), not text a caller wrote.
_NOT_TEXT = frozenset({"model", "role", "type", "image_url", "input_audio", "file"})


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


def _collect(node: object, out: dict[str, None], depth: int) -> None:
    if isinstance(node, str):
        if node:
            out[node] = None
    elif isinstance(node, bool | float) or node is None:
        return
    elif isinstance(node, int):
        # Top-level numbers are sampling parameters; deeper ones are caller data.
        if depth > 1:
            out[str(node)] = None
    elif isinstance(node, dict):
        for key, value in node.items():
            out[str(key)] = None  # a caller-chosen key is forwarded too
            if key not in _NOT_TEXT:
                _collect(value, out, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _collect(item, out, depth + 1)


def _forwarded(data: dict[str, Any]) -> list[str]:
    out: dict[str, None] = {}  # ordered and de-duplicated
    _collect(data, out, 0)
    return list(out)


def other_texts(req: BaseModel, main: str) -> list[str]:
    """Every string of ``req`` as forwarded upstream, except its ``main`` field (the
    completions ``prompt``, the embeddings ``input``), which the main texts cover."""
    data = req.model_dump(mode="json", exclude_unset=True, by_alias=True)
    data.pop(main, None)
    return _forwarded(data)


def chat_other_texts(req: ChatCompletionRequest) -> list[str]:
    """Every string of a chat request as forwarded upstream, except what
    :func:`chat_texts` covers (message text and tool-call arguments)."""
    data = req.model_dump(mode="json", exclude_unset=True, by_alias=True)
    for msg in data.get("messages", ()):
        content = msg.pop("content", None)
        if isinstance(content, list):
            msg["content"] = [
                {k: v for k, v in part.items() if not (k == "text" and part.get("type") == "text")}
                for part in content
                if isinstance(part, dict)
            ]
        for call in msg.get("tool_calls") or ():
            if isinstance(call.get("function"), dict):
                call["function"].pop("arguments", None)
    return _forwarded(data)


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
