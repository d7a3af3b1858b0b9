"""Upstream responses pass through, minus explicit nulls where OpenAI's schema has none."""

from __future__ import annotations

from airlock.protocol.responses import ChatCompletion
from tests.support.spec import assert_valid


def test_null_extras_from_an_upstream_are_dropped_and_others_kept() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "annotations": None,
                    "function_call": None,
                    "reasoning_content": None,
                },
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "total_tokens": 4,
            "prompt_tokens_details": None,
        },
    }
    out = ChatCompletion.model_validate(body).model_dump(mode="json")
    assert out["system_fingerprint"] == "fp_1"
    assert "annotations" not in out["choices"][0]["message"]
    assert "prompt_tokens_details" not in out["usage"]
    assert_valid(out, "CreateChatCompletionResponse")
