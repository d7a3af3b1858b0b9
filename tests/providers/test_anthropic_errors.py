"""The anthropic adapter's failures: status mapping, no upstream text, keys, health, timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airlock.config import DeploymentConfig, ModelConfig
from airlock.errors import AirlockError, BadRequestError, UpstreamError, UpstreamTimeoutError
from airlock.providers.anthropic import AnthropicProvider, UpstreamOverloadedError
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.providers.upstream_errors import UpstreamRateLimitedError
from tests.providers.fake_anthropic import (
    API_KEY,
    CTX,
    KEY_ENV,
    Error,
    FakeAnthropic,
    Stall,
    chat,
    deployment,
    open_provider,
    request,
)
from tests.support.server import free_port

pytestmark = pytest.mark.anyio

SECRET = "Patient Jane Roe SSN 078-05-1120"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    server.reset()
    monkeypatch.setenv(KEY_ENV, API_KEY)
    return server


def assert_no_upstream_text(err: AirlockError) -> None:
    shown = f"{err} {err.to_body()} {err.param} {err.code} {err.headers}"
    for fragment in ("Jane", "078-05", "echo of", "overloaded right now"):
        assert fragment not in shown


@pytest.mark.parametrize(
    ("status", "err_type", "cls", "retryable", "code"),
    [
        (400, "invalid_request_error", BadRequestError, None, "invalid_request_error"),
        (401, "authentication_error", UpstreamError, True, "upstream_error"),
        (403, "permission_error", UpstreamError, True, "upstream_error"),
        (404, "not_found_error", UpstreamError, True, "upstream_error"),
        (413, "request_too_large", BadRequestError, None, "request_too_large"),
        (429, "rate_limit_error", UpstreamRateLimitedError, True, "upstream_rate_limited"),
        (500, "api_error", UpstreamError, True, "upstream_error"),
        (529, "overloaded_error", UpstreamOverloadedError, True, "upstream_overloaded"),
    ],
)
async def test_error_statuses_map_to_typed_errors_without_upstream_text(
    fake: FakeAnthropic,
    status: int,
    err_type: str,
    cls: type[AirlockError],
    retryable: bool | None,
    code: str,
) -> None:
    fake.push(Error(status, err_type, f"echo of your prompt: {SECRET}; overloaded right now"))
    async with open_provider(fake) as p:
        with pytest.raises(AirlockError) as info:
            await chat(p, messages=[{"role": "user", "content": SECRET}])
    err = info.value
    assert type(err) is cls
    assert err.code == code
    assert f"HTTP {status}" in err.message
    assert "claude-test" in err.message
    if isinstance(err, UpstreamError):
        assert err.retryable is retryable
        assert err.upstream_status == status
    else:
        assert err.status_code == 400
    assert_no_upstream_text(err)


async def test_retry_after_is_honoured(fake: FakeAnthropic) -> None:
    fake.push(
        Error(429, "rate_limit_error", "slow down", headers={"retry-after": "7"}),
        Error(529, "overloaded_error", "Overloaded", headers={"retry-after-ms": "1500"}),
    )
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as limited:
            await chat(p)
        with pytest.raises(UpstreamError) as overloaded:
            await chat(p)
    assert limited.value.retry_after == 7
    assert limited.value.status_code == 429
    assert limited.value.headers == {"retry-after": "7"}
    assert overloaded.value.retry_after == 1.5
    assert overloaded.value.retryable
    assert overloaded.value.status_code == 503
    assert overloaded.value.headers == {"retry-after": "2"}


async def test_spend_limit_429_is_told_apart(fake: FakeAnthropic) -> None:
    fake.push(
        Error(
            429, "rate_limit_error", "limit", details={"error_code": "enforced_spend_limit_reached"}
        )
    )
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await chat(p)
    assert info.value.code == "upstream_quota_exhausted"


async def test_anthropic_validation_errors_quoting_the_prompt_stay_upstream(
    fake: FakeAnthropic,
) -> None:
    # Tool history without tool definitions: the real API (and the fake) refuse it and
    # the fake's message quotes the request; airlock reports only the status and type.
    history: list[dict[str, Any]] = [
        {"role": "user", "content": SECRET},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": SECRET},
    ]
    async with open_provider(fake) as p:
        with pytest.raises(BadRequestError) as info:
            await chat(p, messages=history)
    assert info.value.code == "invalid_request_error"
    assert_no_upstream_text(info.value)


async def test_wrong_api_key_is_a_retryable_upstream_error(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-ant-wrong")
    async with open_provider(fake) as p:
        with pytest.raises(UpstreamError) as info:
            await chat(p)
    assert info.value.upstream_status == 401
    assert "sk-ant-wrong" not in str(info.value)


async def test_missing_api_key_env_var_is_a_clear_start_error(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match=f"{KEY_ENV} \\(api_key_env\\) is not set"):
        async with open_provider(fake):
            pass
    assert not fake.requests


async def test_api_key_env_defaults_to_anthropic_api_key(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    dep = deployment(fake).model_copy(update={"api_key_env": None})
    p = AnthropicProvider(dep, "claude-test")
    await p.start()
    try:
        assert await p.check_health()
    finally:
        await p.aclose()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        await AnthropicProvider(dep, "claude-test").start()


async def test_health_check_spends_no_tokens(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_provider(fake) as p:
        assert await p.check_health()
    monkeypatch.setenv(KEY_ENV, "sk-ant-wrong")
    async with open_provider(fake) as p:
        assert await p.check_health()  # a 401 still shows the API is up
    assert fake.model_list_calls == 2
    assert not fake.requests  # no /v1/messages call


async def test_health_check_fails_when_nothing_listens(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment(fake, connect=0.5).model_copy(
        update={"base_url": f"http://127.0.0.1:{free_port()}"}
    )
    p = AnthropicProvider(dep, "claude-test")
    await p.start()
    try:
        assert not await p.check_health()
        with pytest.raises(UpstreamError) as info:
            await p.chat(request(), CTX)
    finally:
        await p.aclose()
    assert info.value.code == "upstream_unreachable"
    assert info.value.retryable


async def test_total_timeout_on_a_slow_reply(fake: FakeAnthropic) -> None:
    fake.push(Stall(3.0))
    async with open_provider(fake, first_token=5.0, total=0.4) as p:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as info:
            await chat(p)
    assert time.monotonic() - started < 2.0
    assert info.value.status_code == 504
    assert "claude-test" in info.value.message


async def test_registered_as_a_builtin_provider(fake: FakeAnthropic, tmp_path: Any) -> None:
    registry = builtin_registry()
    spec = registry.spec("anthropic")
    assert spec.capabilities.chat
    assert spec.capabilities.tools
    assert spec.capabilities.json_mode
    assert spec.capabilities.json_schema
    assert not spec.capabilities.completions
    assert not spec.capabilities.embeddings
    assert not spec.local
    dep = DeploymentConfig(provider="anthropic", base_url=fake.base_url, api_key_env=KEY_ENV)
    model = ModelConfig(name="claude", tier="frontier", deployments=[dep])
    provider = registry.create(dep, model, Resources(tmp_path))
    assert isinstance(provider, AnthropicProvider)
    await provider.start()
    try:
        out = await provider.chat(request(), CTX)
    finally:
        await provider.aclose()
    assert out.choices[0].message.content
