"""The fake Anthropic is as strict as the real API: otherwise the adapter tests prove little."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.providers.fake_anthropic import API_KEY, FakeAnthropic

USER = {"role": "user", "content": "Hi"}
TOOLS = [{"name": "f", "input_schema": {"type": "object"}}]
USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def post(fake: FakeAnthropic, body: dict[str, Any], **headers: str) -> httpx.Response:
    sent = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", **headers}
    return httpx.post(f"{fake.base_url}/v1/messages", json=body, headers=sent, timeout=5)


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "claude-fake-1", "max_tokens": 16, "messages": [USER], **kw}


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (body(messages=[{"role": "system", "content": "x"}, USER]), "messages.0.role"),
        (body(messages=[USER, USER]), "roles must alternate"),
        (body(messages=[{"role": "user", "content": ""}]), "non-empty content"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": " "}]}]),
            "whitespace",
        ),
        (body(messages=[USER, {"role": "assistant", "content": "x "}]), "trailing whitespace"),
        ({"model": "m", "messages": [USER]}, "max_tokens: Field required"),
        (body(temperature=0.5, top_p=0.5), "cannot both be specified"),
        (body(temperature=1.5), "temperature"),
        (body(frequency_penalty=0.1), "Extra inputs"),
        (body(tools=[{"name": "f", "parameters": {}}]), "tools.0.parameters"),
        (body(tool_choice={"type": "auto"}), "only be specified while providing tools"),
        (body(tools=TOOLS, tool_choice={"type": "tool", "name": "g"}), "Tool not found"),
        (body(stop_sequences=["\n"]), "non-whitespace"),
        (
            body(messages=[USER, {"role": "assistant", "content": [USE]}, USER], tools=TOOLS),
            "without `tool_result`",
        ),
        (
            body(
                messages=[
                    USER,
                    {"role": "assistant", "content": [USE]},
                    {"role": "user", "content": [{"type": "text", "text": "x"}, RESULT]},
                ],
                tools=TOOLS,
            ),
            "without `tool_result`",
        ),
        (
            body(
                messages=[
                    USER,
                    {"role": "assistant", "content": [USE]},
                    {"role": "user", "content": [RESULT]},
                ]
            ),
            "must define tools",
        ),
        (
            body(messages=[{"role": "user", "content": [RESULT]}], tools=TOOLS),
            "unexpected `tool_use_id`",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/tiff",
                                    "data": "A",
                                },
                            }
                        ],
                    }
                ]
            ),
            "invalid image source",
        ),
    ],
)
def test_fake_refuses_what_anthropic_refuses(
    fake: FakeAnthropic, bad: dict[str, Any], fragment: str
) -> None:
    resp = post(fake, bad)
    assert resp.status_code == 400
    err = resp.json()
    assert err["type"] == "error"
    assert err["error"]["type"] == "invalid_request_error"
    assert fragment in err["error"]["message"]


def test_fake_checks_headers(fake: FakeAnthropic) -> None:
    assert post(fake, body(), **{"x-api-key": "wrong"}).status_code == 401
    resp = httpx.post(
        f"{fake.base_url}/v1/messages", json=body(), headers={"x-api-key": API_KEY}, timeout=5
    )
    assert resp.status_code == 400
    assert "anthropic-version" in resp.json()["error"]["message"]


def test_fake_accepts_a_valid_tool_round_trip(fake: FakeAnthropic) -> None:
    ok = body(
        system="Be brief.",
        messages=[
            USER,
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."}, USE]},
            {"role": "user", "content": [RESULT, {"type": "text", "text": "Thanks"}]},
        ],
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    resp = post(fake, ok)
    assert resp.status_code == 200, resp.text
    msg = resp.json()
    assert msg["type"] == "message"
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["output_tokens"] > 0


def test_fake_streams_the_real_event_sequence(fake: FakeAnthropic) -> None:
    with httpx.stream(
        "POST",
        f"{fake.base_url}/v1/messages",
        json=body(stream=True, tools=TOOLS, tool_choice={"type": "any"}),
        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        timeout=5,
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [
            line[len("event: ") :] for line in resp.iter_lines() if line.startswith("event: ")
        ]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
