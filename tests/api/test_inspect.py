"""What the inspect stage reads: the main texts, and every other forwarded string."""

from __future__ import annotations

from typing import Any

from airlock.api.inspect import chat_other_texts, chat_texts, other_texts
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest

SSN = "536-22-1234"


def _chat(**fields: Any) -> ChatCompletionRequest:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return ChatCompletionRequest.model_validate(body)


def test_every_forwarded_string_outside_the_messages_is_read() -> None:
    req = _chat(
        messages=[
            {"role": "system", "content": "MAIN-1", "name": "dr_jane_doe"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "MAIN-2"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                ],
                "x_note": {"patient": "John Smith", "mrn": 48213377},
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"main": 3}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "MAIN-3"},
        ],
        user=f"ssn {SSN}",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Find Mary Major's chart",
                    "parameters": {"type": "object", "properties": {"id": {"enum": ["A-77"]}}},
                },
            }
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"description": "for Ann Lee"}},
        },
        stop=["STOP-WORD"],
        metadata={"case": "Case of Rob Roe"},
        max_tokens=4111111111111111,
    )
    main = chat_texts(req)
    assert main == ["MAIN-1", "MAIN-2", '{"main": 3}', "MAIN-3"]
    other = chat_other_texts(req)
    for expected in (
        "dr_jane_doe",
        "x_note",
        "patient",
        "John Smith",
        "48213377",  # a nested number is caller data
        f"ssn {SSN}",
        "Find Mary Major's chart",
        "A-77",
        "for Ann Lee",
        "STOP-WORD",
        "Case of Rob Roe",
        "call_1",
    ):
        assert expected in other, expected
    # The main texts are not read twice (their entities would be counted twice) ...
    assert not {"MAIN-1", "MAIN-2", "MAIN-3", '{"main": 3}'} & set(other)
    # ... nor are binary payloads, protocol values or top-level numeric parameters.
    assert not any("base64" in t for t in other)
    assert not {"system", "assistant", "tool", "m", "object"} & set(other)
    assert "4111111111111111" not in other
    assert len(other) == len(set(other))


def test_completions_and_embeddings_read_everything_but_their_main_field() -> None:
    completion = CompletionRequest.model_validate(
        {"model": "m", "prompt": "MAIN", "suffix": "Dear Sam Poe", "user": "u-1", "x": [SSN]}
    )
    other = other_texts(completion, "prompt")
    assert {"Dear Sam Poe", "u-1", "x", SSN} <= set(other)
    assert "MAIN" not in other
    embedding = EmbeddingRequest.model_validate(
        {"model": "m", "input": ["MAIN"], "user": "Jo Bloggs", "dimensions": 8}
    )
    other = other_texts(embedding, "input")
    assert "Jo Bloggs" in other
    assert "MAIN" not in other
    assert "8" not in other
