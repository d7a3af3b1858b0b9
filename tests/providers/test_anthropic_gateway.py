"""End to end: the official openai client → the real gateway → the anthropic adapter → fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.providers.fake_anthropic import (
    API_KEY,
    KEY_ENV,
    UPSTREAM_MODEL,
    Error,
    FakeAnthropic,
    Text,
)
from tests.support.server import GatewayProcess, start_gateway

CONFIG = """
models:
  - name: claude
    tier: frontier
    capabilities: [chat, tools, json_mode]
    deployments:
      - provider: anthropic
        name: claude-us
        base_url: {base_url}
        api_key_env: {key_env}
        upstream_model: {upstream}
        region: us
        timeouts: {{connect: 2, first_token: 10, total: 30}}
routing:
  retry: {{max_attempts: 2, backoff_base_s: 0, backoff_max_s: 0}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("anthropic-gw")
    config = root / "airlock.yaml"
    config.write_text(
        CONFIG.format(base_url=fake.base_url, key_env=KEY_ENV, upstream=UPSTREAM_MODEL)
    )
    gw = start_gateway(root / "home", config=config, env={KEY_ENV: API_KEY})
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: GatewayProcess, fake: FakeAnthropic) -> openai.OpenAI:
    fake.reset()
    return openai.OpenAI(base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0)


def test_chat_through_the_gateway(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
    )
    out = raw.parse()
    assert out.model == "claude"
    assert out.choices[0].message.content == "Hello from the fake Claude. How can I help you today?"
    assert out.usage is not None
    assert out.usage.completion_tokens == 11
    assert raw.headers["x-airlock-route"] == "claude"


def test_streaming_usage_chunk_only_when_asked(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.push(Text("one two three"), Text("one two three"))
    plain = list(
        client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "Count"}], stream=True
        )
    )
    with_usage = list(
        client.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "Count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in plain if c.choices)
    assert text == "one two three"
    assert all(c.usage is None for c in plain)
    assert plain[-1].choices[0].finish_reason == "stop"
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 3


def test_tools_and_json_mode_through_the_gateway(client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
    called = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Look it up"}],
        tools=[tool],  # type: ignore[list-item]
        tool_choice="required",
    )
    calls = called.choices[0].message.tool_calls
    assert calls is not None
    assert json.loads(calls[0].function.arguments) == {"q": "text"}  # type: ignore[union-attr]
    answered = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(answered.choices[0].message.content or ""), dict)


def test_upstream_overload_is_retried_then_reported_without_its_body(
    client: openai.OpenAI, fake: FakeAnthropic, gateway: GatewayProcess
) -> None:
    fake.push(Error(529, "overloaded_error", "Overloaded while reading: tell me a secret"))
    out = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}]
    )
    assert out.choices[0].message.content  # the retry succeeded
    assert len(fake.requests) == 2
    fake.push(*[Error(529, "overloaded_error", "Overloaded while reading: tell me a secret")] * 2)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 503  # overloaded: try again later
    assert "upstream_overloaded" in info.value.response.text
    assert "secret" not in info.value.response.text
    assert "secret" not in Path(gateway.log_path).read_text()
