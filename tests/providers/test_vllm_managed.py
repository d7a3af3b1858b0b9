"""The ``vllm-managed`` provider against a stand-in vLLM (a real child process + HTTP server).

The stand-in (tests/integration/fake_vllm.py) runs as vLLM's api_server module from a
throw-away venv, so the launcher's real code path runs: argv, key in the environment,
process group, ``/health`` polling, restart, drain. The real-vLLM version of these tests
is tests/integration/test_vllm_managed.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from airlock.config import ConfigError, DeploymentConfig, ModelConfig
from airlock.deploy.launcher import VllmLaunchError, VllmState
from airlock.deploy.launcher_flags import COMPLIANCE_FLAGS
from airlock.deploy.vllm_env import VllmEnv
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.responses import ChatCompletionChunk
from airlock.providers.base import CallContext
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from airlock.providers.vllm_managed import VllmManagedProvider, VllmUnavailableError
from tests.integration.fake_vllm import make_fake_vllm_env
from tests.support.server import start_gateway

pytestmark = pytest.mark.timeout(120)

CTX = CallContext(request_id="req-1", model="tiny-served")


class Setup:
    def __init__(self, root: Path, env: VllmEnv) -> None:
        self.root = root
        self.env = env
        self.state = root / "state"
        self.state.mkdir()
        self.model_dir = root / "model"
        self.model_dir.mkdir()
        (self.model_dir / "config.json").write_text("{}")
        (self.model_dir / "model.safetensors").write_bytes(b"")
        self.home = root / "home"

    def options(self, **extra: Any) -> dict[str, Any]:
        return {
            "python": str(self.env.python),
            "model_dir": str(self.model_dir),
            "max_model_len": 512,
            "max_num_seqs": 4,
            "drain_timeout_s": 10,
            **extra,
        }

    def deployment(self, **fields: Any) -> DeploymentConfig:
        fields.setdefault("options", self.options())
        return DeploymentConfig(
            provider="vllm-managed", name="vm", upstream_model="tiny-served", **fields
        )

    def provider(self, dep: DeploymentConfig | None = None) -> VllmManagedProvider:
        dep = dep or self.deployment()
        model = ModelConfig(
            name="tiny",
            tier="self-hosted",
            capabilities=frozenset({"chat", "json_mode"}),
            deployments=[dep],
        )
        provider = builtin_registry().create(dep, model, Resources(self.home))
        assert isinstance(provider, VllmManagedProvider)
        return provider

    def launched(self, attempt: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / f"argv-{attempt}.json").read_text())
        return data


@pytest.fixture
def s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path / "state"))
    return Setup(tmp_path, make_fake_vllm_env(tmp_path))


def chat_request(**extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


async def collect(stream: AsyncGenerator[ChatCompletionChunk, None]) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in stream]


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_start_launches_the_child_and_serves_through_it(s: Setup) -> None:
    provider = s.provider()

    async def scenario() -> None:
        await provider.start()
        try:
            process = provider.process
            assert process is not None
            assert process.state is VllmState.READY
            assert await provider.check_health()
            resp = await provider.chat(chat_request(), CTX)
            assert resp.choices[0].message.content == "tok0 tok1 tok2 tok3"
            assert resp.usage is not None
            assert resp.usage.completion_tokens == 4
            chunks = await collect(provider.chat_stream(chat_request(stream=True), CTX))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "tok0 tok1 tok2 tok3 "
            assert chunks[-1].usage is not None  # asked for even though the caller did not
            assert provider.in_flight == 0
        finally:
            await provider.aclose()
        assert group_gone(s.launched(1)["pid"])
        assert process.state is VllmState.STOPPED
        assert not await provider.check_health()
        with pytest.raises(VllmUnavailableError) as info:
            await provider.chat(chat_request(), CTX)
        assert info.value.retryable
        assert info.value.status_code == 503

    run(scenario)
    launched = s.launched(1)
    argv: list[str] = launched["argv"]
    flags = dict(itertools.pairwise(argv))
    assert flags["--host"] == "127.0.0.1"
    assert flags["--served-model-name"] == "tiny-served"
    assert flags["--model"] == str(s.model_dir)
    assert (flags["--max-model-len"], flags["--max-num-seqs"]) == ("512", "4")
    assert tuple(argv[-len(COMPLIANCE_FLAGS) :]) == COMPLIANCE_FLAGS
    # The generated key reaches the child through its environment, never its argv; the
    # stand-in answers 401 to any other bearer, so the calls above prove the client sent it.
    key = launched["env"]["VLLM_API_KEY"]
    assert len(key) >= 32
    assert not any(key in a for a in argv)
    assert launched["env"]["VLLM_NO_USAGE_STATS"] == "1"
    # The child's log lives under the gateway's home by default.
    logs = list((s.home / "vllm").glob("vm-*.log"))
    assert len(logs) == 1
    assert "launching vLLM" in logs[0].read_text()


def test_killed_child_is_refused_fast_while_restarting_then_serves_again(s: Setup) -> None:
    provider = s.provider()

    async def scenario() -> None:
        await provider.start()
        try:
            process = provider.process
            assert process is not None
            old_pid = process.pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)
            await eventually(lambda: process.state is not VllmState.READY)
            # Not sent to a half-started server (which may hold its port): refused at once,
            # retryable, so the gateway's failover moves on to another deployment.
            started = time.monotonic()
            with pytest.raises(VllmUnavailableError) as info:
                await provider.chat(chat_request(), CTX)
            with pytest.raises(VllmUnavailableError):
                await collect(provider.chat_stream(chat_request(stream=True), CTX))
            assert time.monotonic() - started < 0.5
            assert info.value.retryable
            assert info.value.headers["retry-after"] == "5"
            assert "restarting" in info.value.message
            assert not await provider.check_health()
            async with asyncio.timeout(60):
                await process.wait_ready()
            assert process.restarts == 1
            assert process.pid not in (None, old_pid)
            assert await provider.check_health()
            resp = await provider.chat(chat_request(), CTX)
            assert resp.choices[0].message.content
            assert provider.in_flight == 0
        finally:
            await provider.aclose()

    run(scenario)
    assert s.launched(2)["env"]["VLLM_API_KEY"] == s.launched(1)["env"]["VLLM_API_KEY"]


def test_aclose_drains_an_in_flight_stream_and_refuses_new_calls(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TOKENS", "6")
    monkeypatch.setenv("FAKE_TOKEN_DELAY", "0.2")
    provider = s.provider()

    async def scenario() -> None:
        await provider.start()
        process = provider.process
        assert process is not None
        stream = provider.chat_stream(chat_request(stream=True), CTX)
        first = await anext(stream)
        assert provider.in_flight == 1
        closing = asyncio.create_task(provider.aclose())
        await eventually(lambda: process.state is VllmState.DRAINING, timeout=5)
        with pytest.raises(VllmUnavailableError, match="draining"):
            await provider.chat(chat_request(), CTX)
        rest = await collect(stream)
        finished_at = time.monotonic()
        await closing
        stopped_at = time.monotonic()
        finishes = [c.choices[0].finish_reason for c in [first, *rest] if c.choices]
        assert finishes[-1] == "length"  # ran to its natural end, not cut by the stop
        assert finished_at <= stopped_at
        assert process.state is VllmState.STOPPED
        assert provider.in_flight == 0

    run(scenario)


def test_api_key_env_supplies_the_childs_key(s: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VLLM_KEY", "k-from-a-secret-0123456789")
    provider = s.provider(s.deployment(api_key_env="TEST_VLLM_KEY"))

    async def scenario() -> None:
        await provider.start()
        try:
            assert (await provider.chat(chat_request(), CTX)).choices
        finally:
            await provider.aclose()

    run(scenario)
    assert s.launched(1)["env"]["VLLM_API_KEY"] == "k-from-a-secret-0123456789"


def test_missing_key_variable_fails_start_without_launching(s: Setup) -> None:
    provider = s.provider(s.deployment(api_key_env="TEST_VLLM_KEY_UNSET"))
    with pytest.raises(ConfigError, match="TEST_VLLM_KEY_UNSET"):
        run(provider.start)
    assert not (s.state / "attempts").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus": 2}, "gpus: unknown option"),
        ({"max_model_len": 0}, "max_model_len"),
        ({"port": 70000}, "port"),
        ({"extra_flags": ["--enable-log-requests"]}, "request logging must stay off"),
        ({"extra_flags": ["--api-key", "x"]}, "VLLM_API_KEY"),
        ({"extra_flags": ["--uvicorn-log-level", "debug"]}, "debug or trace"),
    ],
)
def test_bad_options_are_config_errors_naming_the_deployment(
    s: Setup, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        s.provider(s.deployment(options=s.options(**options)))
    assert "deployment 'vm'" in str(info.value)


def test_base_url_is_refused(s: Setup) -> None:
    with pytest.raises(ConfigError, match="base_url is not allowed"):
        s.provider(s.deployment(base_url="http://10.0.0.1:8000/v1"))


def test_start_fails_clearly_when_the_child_dies_before_ready(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EXIT_ON_ATTEMPTS", "1")
    provider = s.provider()
    with pytest.raises(VllmLaunchError, match="exited with code 3"):
        run(provider.start)
    run(provider.aclose)  # safe after a failed start


def test_gateway_starts_serves_and_stops_a_managed_deployment(s: Setup) -> None:
    config = s.root / "airlock.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "tiny",
                        "tier": "self-hosted",
                        "capabilities": ["chat"],
                        "deployments": [s.deployment().model_dump(mode="json")],
                    }
                ]
            }
        )
    )
    gw = start_gateway(s.home, config=config, env={"FAKE_STATE_DIR": str(s.state)})
    try:
        with openai.OpenAI(base_url=gw.api_base, api_key=gw.master_key, max_retries=0) as client:
            resp = client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "hi"}]
            )
            assert resp.model == "tiny"
            assert resp.choices[0].message.content == "tok0 tok1 tok2 tok3"
        body = json.loads((s.state / "requests").read_text().splitlines()[-1])
        assert body["model"] == "tiny-served"
    finally:
        # uvicorn re-raises the SIGTERM after its graceful shutdown.
        assert gw.stop() in (0, -signal.SIGTERM)
    assert '"event":"stopped"' in gw.log_text()  # the lifespan ran its shutdown
    # The gateway's shutdown stopped the child and its process group.
    assert group_gone(s.launched(1)["pid"])
