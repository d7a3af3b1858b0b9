"""The ``pseudonymize`` policy end to end: what the frontier API sees, what the caller gets.

The frontier upstream here is a real loopback server that echoes the last user message
back — as one JSON answer, or streamed three characters at a time so placeholders are
split across chunks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.server import GatewayProcess, free_port, start_gateway

PROMPT = "Write to John Miller (SSN 536-22-1234, jmiller@fastmail.de) about his claim."
VALUES = ("John Miller", "536-22-1234", "jmiller@fastmail.de")


class EchoUpstream:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.port = free_port()
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> EchoUpstream:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "echo upstream did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.seen.append(body)
        text = "Echo: " + body["messages"][-1]["content"]
        usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        base = {"id": "chatcmpl-echo", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            event = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        def events() -> Iterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            for i in range(0, len(text), 3):
                yield chunk({"content": text[i : i + 3]})
            yield chunk({}, "stop")
            final = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            yield b"data: " + json.dumps(final).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoUpstream]:
    with EchoUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, echo: EchoUpstream) -> Iterator[GatewayProcess]:
    root: Path = tmp_path_factory.mktemp("pseudo")
    config = {
        "models": [
            {
                "name": "frontier",
                "tier": "frontier",
                "privacy_policy": "pseudonymize",
                "deployments": [{"provider": "openai-compatible", "base_url": echo.base_url}],
            },
            {
                "name": "frontier-strict",
                "tier": "frontier",
                "deployments": [{"provider": "openai-compatible", "base_url": echo.base_url}],
            },
        ]
    }
    (root / "airlock.yaml").write_text(yaml.safe_dump(config))
    gateway = start_gateway(root / "home", config=root / "airlock.yaml")
    yield gateway
    gateway.stop()


@pytest.fixture
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.api_base, api_key=gw.master_key, max_retries=0)


def _last_sent(echo: EchoUpstream) -> str:
    content: str = echo.seen[-1]["messages"][-1]["content"]
    return content


def test_frontier_sees_placeholders_and_the_caller_gets_its_values_back(
    client: openai.OpenAI, echo: EchoUpstream
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="frontier", messages=[{"role": "user", "content": PROMPT}]
    )
    sent = _last_sent(echo)
    assert all(v not in sent for v in VALUES)
    assert "<US_SSN_1>" in sent
    assert raw.headers["x-airlock-route-reason"] == "policy:pseudonymize"
    answer = raw.parse().choices[0].message.content
    assert answer == "Echo: " + PROMPT


def test_streamed_placeholders_split_across_chunks_are_restored(
    client: openai.OpenAI, echo: EchoUpstream
) -> None:
    stream = client.chat.completions.create(
        model="frontier", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert all(v not in _last_sent(echo) for v in VALUES)
    assert text == "Echo: " + PROMPT


def test_without_the_policy_sensitive_data_never_reaches_the_frontier(
    client: openai.OpenAI, echo: EchoUpstream
) -> None:
    before = len(echo.seen)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="frontier-strict", messages=[{"role": "user", "content": PROMPT}]
        )
    assert info.value.status_code == 503
    assert len(echo.seen) == before


def test_plain_requests_pass_through_unchanged(client: openai.OpenAI, echo: EchoUpstream) -> None:
    resp = client.chat.completions.create(
        model="frontier-strict", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    assert _last_sent(echo) == "What is 2 + 2?"
    assert resp.choices[0].message.content == "Echo: What is 2 + 2?"


@pytest.mark.parametrize(
    "extra",
    [
        {"user": "patient 536-22-1234"},
        {"metadata": {"note": "SSN 536-22-1234"}},
        {"x_case": {"ids": [{"ssn": "536-22-1234"}]}},
        {"stop": ["536-22-1234"]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "lookup",
                        "description": "Look up the chart of SSN 536-22-1234",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ]
        },
    ],
    ids=["user", "metadata", "unknown-nested", "stop", "tool-description"],
)
def test_data_outside_the_messages_keeps_the_request_off_the_frontier(
    gw: GatewayProcess, echo: EchoUpstream, extra: dict[str, Any]
) -> None:
    before = len(echo.seen)
    body = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], **extra}
    for model in ("frontier-strict", "frontier"):
        # Not even pseudonymised: placeholders cannot stand in for those fields.
        resp = httpx.post(
            gw.api_base + "/chat/completions",
            headers={"authorization": f"Bearer {gw.master_key}"},
            json={"model": model, **body},
            timeout=30,
        )
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "no_compliant_deployment"
        assert "536-22-1234" not in resp.text
    assert len(echo.seen) == before


def test_harmless_extra_fields_still_reach_the_frontier(
    gw: GatewayProcess, echo: EchoUpstream
) -> None:
    resp = httpx.post(
        gw.api_base + "/chat/completions",
        headers={"authorization": f"Bearer {gw.master_key}"},
        json={
            "model": "frontier-strict",
            "messages": [{"role": "user", "content": "What is 2 + 2?"}],
            "user": "app-42",
            "metadata": {"team": "billing"},
        },
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert echo.seen[-1]["metadata"] == {"team": "billing"}
