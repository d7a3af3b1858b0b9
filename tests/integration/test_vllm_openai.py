"""The official openai client straight against a real vLLM started by the airlock launcher."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.conftest import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

MAX_TOKENS = 12


@pytest.fixture
def client(vllm_server: VllmServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=vllm_server.base_url, api_key=vllm_server.api_key, max_retries=0, timeout=120
    ) as c:
        yield c


def test_chat_completion_returns_text_and_usage(
    vllm_server: VllmServer, client: openai.OpenAI
) -> None:
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    assert resp.model == vllm_server.model
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert 0 < resp.usage.completion_tokens <= MAX_TOKENS
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_streaming_deltas_join_to_the_same_text_and_report_usage(
    vllm_server: VllmServer, client: openai.OpenAI
) -> None:
    messages = [{"role": "user", "content": "Count: one, two,"}]
    whole = client.chat.completions.create(
        model=vllm_server.model, messages=messages, max_tokens=MAX_TOKENS, temperature=0
    )
    stream = client.chat.completions.create(
        model=vllm_server.model,
        messages=messages,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str] = []
    usage = None
    chunks = 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert chunks > 2  # really streamed, not one blob
    assert "".join(pieces) == whole.choices[0].message.content  # greedy: same tokens
    assert finish == [whole.choices[0].finish_reason]
    assert usage is not None
    assert whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_json_mode_returns_a_json_object(vllm_server: VllmServer, client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=vllm_server.model,
        messages=[
            {"role": "system", "content": "Reply with a JSON object only."},
            {"role": "user", "content": 'Give {"ok": true}.'},
        ],
        response_format={"type": "json_object"},
        max_tokens=24,
        temperature=0,
    )
    # Greedy SmolLM2 under the JSON grammar closes the object well within 24 tokens
    # (measured: '{\n  "ok": true\n}', finish_reason "stop").
    assert resp.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(resp.choices[0].message.content or ""), dict)


def test_wrong_api_key_is_rejected(vllm_server: VllmServer, client: openai.OpenAI) -> None:
    with (
        openai.OpenAI(base_url=vllm_server.base_url, api_key="wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.models.list()


def test_models_lists_the_served_name(vllm_server: VllmServer, client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [vllm_server.model]


def test_request_content_never_reaches_the_log(
    vllm_server: VllmServer, client: openai.OpenAI
) -> None:
    canary = f"canary{secrets.token_hex(8)}"
    client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": f"Repeat {canary} {canary}"}],
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    stream = client.chat.completions.create(
        model=vllm_server.model,
        messages=[{"role": "user", "content": f"Say {canary}"}],
        max_tokens=MAX_TOKENS,
        stream=True,
    )
    for _ in stream:
        pass
    # An invalid request, whose error path might echo its input.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=vllm_server.model,
            messages=[{"role": "user", "content": canary * 2000}],
            max_tokens=MAX_TOKENS,
        )
    # Stats lines are flushed every few seconds; read what is there now plus a health ping.
    httpx.get(f"{vllm_server.handle.root_url}/health", timeout=10)
    log = vllm_server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Avg prompt throughput" in log or "Application startup complete" in log
    assert canary not in log
