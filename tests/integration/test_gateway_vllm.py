"""The official openai client through the real airlock gateway to real vLLM replicas.

One gateway (module-scoped) serves two models: ``smollm2-one`` (the primary replica only,
for deterministic comparisons) and ``smollm2-pool`` (both replicas behind one name, for
load balancing and failover). The last test kills a replica; the launcher restarts it
in the background for the tests that run after this module.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from airlock.deploy.launcher import VllmState
from tests.integration.conftest import SERVED_MODEL, VllmServer, _PoolFactory
from tests.integration.gateway_support import (
    access_records,
    log_records,
    openai_deployment,
    served_requests,
    wait_for,
    write_config,
)
from tests.support.server import GatewayProcess, start_gateway
from tests.support.spec import assert_valid

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

ONE = "smollm2-one"
POOL = "smollm2-pool"
MAX_TOKENS = 12
CAPS = ["chat", "completions", "json_mode"]


@pytest.fixture(scope="module")
def replicas(_vllm_factory: _PoolFactory) -> tuple[VllmServer, VllmServer]:
    first, second = _vllm_factory.ensure(("primary", "secondary"))
    return first, second


@pytest.fixture(scope="module")
def gateway(
    replicas: tuple[VllmServer, VllmServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    primary, secondary = replicas
    root = tmp_path_factory.mktemp("gw-vllm")
    # Bound the wait for the first byte so that a stuck replica costs a failover, not
    # the one-minute default.
    timeouts = {"connect": 2, "first_token": 15, "total": 120}
    config = write_config(
        root / "airlock.yaml",
        [
            {
                "name": ONE,
                "tier": "self-hosted",
                "capabilities": CAPS,
                "deployments": [openai_deployment("vllm-a", primary, "VLLM_KEY_A")],
            },
            {
                "name": POOL,
                "tier": "self-hosted",
                "capabilities": CAPS,
                "deployments": [
                    openai_deployment("pool-a", primary, "VLLM_KEY_A", timeouts=timeouts),
                    openai_deployment("pool-b", secondary, "VLLM_KEY_B", timeouts=timeouts),
                ],
            },
        ],
        # Probe often, so that /health follows a replica going down within seconds.
        routing={"health_check_interval_s": 1},
    )
    gw = start_gateway(
        root / "home",
        config=config,
        env={"VLLM_KEY_A": primary.api_key, "VLLM_KEY_B": secondary.api_key},
    )
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0, timeout=120
    ) as c:
        yield c


def _direct(server: VllmServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def test_chat_answer_and_usage_are_vllms_under_the_public_name(
    replicas: tuple[VllmServer, VllmServer], client: openai.OpenAI
) -> None:
    messages = [{"role": "user", "content": "Name a colour."}]
    resp = client.chat.completions.create(
        model=ONE, messages=messages, max_tokens=MAX_TOKENS, temperature=0
    )
    assert resp.model == ONE
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert 0 < resp.usage.completion_tokens <= MAX_TOKENS
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    with _direct(replicas[0]) as direct:
        same = direct.chat.completions.create(
            model=SERVED_MODEL, messages=messages, max_tokens=MAX_TOKENS, temperature=0
        )
    # Greedy decoding on the same server: airlock passed the answer and counts through.
    assert resp.choices[0].message.content == same.choices[0].message.content
    assert same.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (
        same.usage.prompt_tokens,
        same.usage.completion_tokens,
    )


def test_chat_response_body_matches_openais_schema(gateway: GatewayProcess) -> None:
    resp = httpx.post(
        f"{gateway.api_base}/chat/completions",
        headers={"authorization": f"Bearer {gateway.master_key}"},
        json={"model": ONE, "messages": [{"role": "user", "content": "Hi."}], "max_tokens": 4},
        timeout=120,
    )
    assert resp.status_code == 200
    assert_valid(resp.json(), "CreateChatCompletionResponse")


def test_streaming_with_include_usage_matches_the_whole_answer(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Count: one, two,"}]
    whole = client.chat.completions.create(
        model=ONE, messages=messages, max_tokens=MAX_TOKENS, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model=ONE,
            messages=messages,
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len(chunks) > 2  # really streamed
    assert {c.model for c in chunks} == {ONE}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    # The usage chunk comes last, with no choices, as OpenAI sends it.
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert whole.usage is not None
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_streaming_without_include_usage_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    # airlock always asks vLLM for usage (to meter the call) and strips it again here.
    chunks = list(
        client.chat.completions.create(
            model=ONE,
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=MAX_TOKENS,
            stream=True,
        )
    )
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_json_mode_returns_a_json_object(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ONE,
        messages=[
            {"role": "system", "content": "Reply with a JSON object only."},
            {"role": "user", "content": 'Give {"ok": true}.'},
        ],
        response_format={"type": "json_object"},
        max_tokens=24,
        temperature=0,
    )
    assert resp.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(resp.choices[0].message.content or ""), dict)


def test_text_completion_passes_through(client: openai.OpenAI) -> None:
    resp = client.completions.create(
        model=ONE, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert resp.model == ONE
    assert resp.choices[0].text
    assert resp.usage is not None
    assert resp.usage.completion_tokens > 0


def test_usage_is_metered_and_no_content_is_logged(
    gateway: GatewayProcess, client: openai.OpenAI
) -> None:
    canary = f"canary{secrets.token_hex(8)}"
    resp = client.chat.completions.create(
        model=ONE,
        messages=[{"role": "user", "content": f"Repeat {canary}"}],
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    chunks = list(
        client.chat.completions.create(
            model=ONE,
            messages=[{"role": "user", "content": f"Say {canary}"}],
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = chunks[-1].usage
    assert resp.usage is not None
    assert streamed is not None
    time.sleep(0.5)  # the access log line is written as the response ends
    log = gateway.log_text()
    assert canary not in log
    records = [r for r in access_records(log) if r.get("requested_model") == ONE][-2:]
    assert [r["stream"] for r in records] == [False, True]
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in records] == [
        (resp.usage.prompt_tokens, resp.usage.completion_tokens),
        (streamed.prompt_tokens, streamed.completion_tokens),
    ]
    assert {r["deployment"] for r in records} == {"vllm-a"}


def _health(gateway: GatewayProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gateway.base_url}/health", timeout=10).json()
    return body


def test_gateway_health_reports_every_replica(gateway: GatewayProcess) -> None:
    body = _health(gateway)
    assert body["status"] == "ok"
    assert body["deployments"] == {"vllm-a": True, "pool-a": True, "pool-b": True}


def _load(
    gateway: GatewayProcess, n: int, *, stream: bool = False, max_tokens: int = 24
) -> list[tuple[str, float]]:
    """``n`` concurrent requests to the pool; (outcome, seconds) for each."""
    results: list[tuple[str, float]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        started = time.monotonic()
        try:
            with openai.OpenAI(
                base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0, timeout=120
            ) as c:
                messages = [{"role": "user", "content": f"Tell story number {i} about a cat."}]
                if stream:
                    text = "".join(
                        ch.choices[0].delta.content or ""
                        for ch in c.chat.completions.create(
                            model=POOL, messages=messages, max_tokens=max_tokens, stream=True
                        )
                        if ch.choices
                    )
                else:
                    resp = c.chat.completions.create(
                        model=POOL, messages=messages, max_tokens=max_tokens
                    )
                    text = resp.choices[0].message.content or ""
            outcome = "ok" if text else "empty"
        except openai.APIError as exc:
            outcome = f"failed:{type(exc).__name__}:{getattr(exc, 'status_code', '')}"
        with lock:
            results.append((outcome, time.monotonic() - started))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a request through airlock hung"
    return results


def test_load_is_spread_over_both_replicas(
    gateway: GatewayProcess, replicas: tuple[VllmServer, VllmServer]
) -> None:
    before = [served_requests(r) for r in replicas]
    results = _load(gateway, 12)
    assert [o for o, _ in results] == ["ok"] * 12
    served = [served_requests(r) - b for r, b in zip(replicas, before, strict=True)]
    assert sum(served) == 12
    # Least-outstanding-requests: concurrent requests go to both replicas.
    assert min(served) >= 3, served
    deployments = [
        r["deployment"]
        for r in access_records(gateway.log_text())
        if r.get("requested_model") == POOL
    ][-12:]
    assert set(deployments) == {"pool-a", "pool-b"}


def test_replica_killed_mid_run_requests_keep_succeeding(
    gateway: GatewayProcess, replicas: tuple[VllmServer, VllmServer]
) -> None:
    """kill -9 one replica under load: every non-streamed request still gets its answer
    (no byte had gone out, so airlock retries it on the other replica), and none hangs."""
    victim = replicas[1]
    pid = victim.handle.pid
    assert pid is not None
    results: list[tuple[str, float]] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            results.extend(_load(gateway, 1, max_tokens=32))

    workers = [threading.Thread(target=worker) for _ in range(6)]
    for w in workers:
        w.start()
    time.sleep(4)  # both replicas busy
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # Streams opened after the kill also fail over (before their first byte).
    after = _load(gateway, 6, stream=True)
    while time.monotonic() - killed_at < 15:
        time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join(timeout=180)
    assert not any(w.is_alive() for w in workers), "a request through airlock hung"
    outcomes = [o for o, _ in results + after]
    assert outcomes
    assert all(o == "ok" for o in outcomes), outcomes
    assert max(s for _, s in results + after) < 60
    # The restart takes about a minute: /health shows the replica down meanwhile.
    assert victim.handle.state is not VllmState.READY
    wait_for(
        lambda: (
            _health(gateway)["deployments"] == {"vllm-a": True, "pool-a": True, "pool-b": False}
        ),
        timeout=10,
    )
    log = gateway.log_text()
    served_by = {r["deployment"] for r in access_records(log) if r.get("requested_model") == POOL}
    assert served_by == {"pool-a", "pool-b"}
    # Failover really happened: calls to the dead replica failed and were retried.
    failed = [r for r in log_records(log, "upstream_failed") if r.get("deployment") == "pool-b"]
    assert failed
    assert all(r["retryable"] for r in failed)


def test_replica_logs_hold_no_request_content(replicas: tuple[VllmServer, VllmServer]) -> None:
    for server in replicas:
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
        assert "Tell story number" not in log
        assert "Name a colour" not in log
