"""The fast text-chunk SSE encoder writes exactly what pydantic's serialiser writes."""

from __future__ import annotations

from typing import Any

import pytest

from airlock.api.responses import sse_event
from airlock.api.streaming import TextChunkEncoder
from airlock.protocol.responses import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatDelta,
    ToolCallDelta,
    ToolCallFunctionDelta,
    Usage,
)


def _chunk(text: str | None, *, model: str = "smollm2", index: int = 0) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="chatcmpl-x\"y'z",
        created=1_700_000_000,
        model=model,
        choices=[ChatChunkChoice(index=index, delta=ChatDelta(content=text))],
    )


_TEXTS = [
    "",
    " hello",
    'quote " backslash \\ slash /',
    "\n\t\r\b\f\x00\x1f\x7f",
    "\u2028\u2029 é ß 中文 🦊 \U0010ffff",
    "".join(chr(c) for c in range(0x20)),
]


@pytest.mark.parametrize("text", _TEXTS)
def test_text_chunks_match_pydantic_byte_for_byte(text: str) -> None:
    encoder = TextChunkEncoder()
    chunk = _chunk(text)
    assert encoder.encode(chunk) == sse_event(chunk)


def test_every_code_point_matches_pydantic() -> None:
    encoder = TextChunkEncoder()
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), 4096):
        chunk = _chunk("".join(chr(c) for c in points[start : start + 4096]))
        assert encoder.encode(chunk) == sse_event(chunk)


def test_prefix_follows_model_and_index_changes() -> None:
    encoder = TextChunkEncoder()
    for chunk in (_chunk("a"), _chunk("b", model='pub"lic'), _chunk("c", index=2), _chunk("d")):
        assert encoder.encode(chunk) == sse_event(chunk)
    renamed = _chunk("e")
    renamed.model = "renamed-after-construction"  # what relay_stream does
    assert encoder.encode(renamed) == sse_event(renamed)


def test_other_chunks_are_left_to_pydantic() -> None:
    encoder = TextChunkEncoder()
    base: dict[str, Any] = {"id": "c", "created": 1, "model": "m"}
    others = [
        ChatCompletionChunk(
            **base, choices=[ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))]
        ),
        ChatCompletionChunk(
            **base, choices=[ChatChunkChoice(delta=ChatDelta(), finish_reason="stop")]
        ),
        ChatCompletionChunk(
            **base, choices=[ChatChunkChoice(delta=ChatDelta(content="x"), finish_reason="length")]
        ),
        ChatCompletionChunk(**base, choices=[], usage=Usage.of(1, 2)),
        ChatCompletionChunk(
            **base,
            choices=[
                ChatChunkChoice(
                    delta=ChatDelta(
                        tool_calls=[
                            ToolCallDelta(index=0, function=ToolCallFunctionDelta(arguments="{"))
                        ]
                    )
                )
            ],
        ),
        ChatCompletionChunk(
            **base,
            choices=[ChatChunkChoice(delta=ChatDelta(content="x"), logprobs={"content": []})],
        ),
        ChatCompletionChunk(
            **base, system_fingerprint="fp", choices=[ChatChunkChoice(delta=ChatDelta(content="x"))]
        ),
        ChatCompletionChunk.model_validate(
            {**base, "service_tier": "default", "choices": [{"delta": {"content": "x"}}]}
        ),
        ChatCompletionChunk(
            **base,
            choices=[
                ChatChunkChoice(index=0, delta=ChatDelta(content="a")),
                ChatChunkChoice(index=1, delta=ChatDelta(content="b")),
            ],
        ),
        _chunk("\ud800"),  # a lone surrogate
    ]
    for chunk in others:
        assert encoder.encode(chunk) is None
