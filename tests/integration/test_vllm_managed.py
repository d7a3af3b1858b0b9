"""``provider: vllm-managed`` end to end: airlock starts vLLM itself and serves through it.

One gateway (module-scoped) whose only deployment is a vLLM child it launched; the tests
kill that child while requests are in flight and watch the gateway recover, and finally
stop the gateway and check that the child went with it.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import READY_TIMEOUT, require_vllm_setup
from tests.integration.gateway_support import access_records, wait_for, write_config
from tests.support.server import GatewayProcess, start_gateway

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1500)]

MODEL = "smollm2-managed"
DEPLOYMENT = "managed-a"
API_SERVER = b"vllm.entrypoints.openai.api_server"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env, model_dir = require_vllm_setup()
    root = tmp_path_factory.mktemp("gw-managed")
    config = write_config(
        root / "airlock.yaml",
        [
            {
                "name": MODEL,
                "tier": "self-hosted",
                "capabilities": ["chat", "completions", "json_mode"],
                "deployments": [
                    {
                        "provider": "vllm-managed",
                        "name": DEPLOYMENT,
                        "upstream_model": "smollm2-135m-instruct",
                        "timeouts": {"connect": 2, "first_token": 60, "total": 120},
                        "options": {
                            "python": str(env.python),
                            "model_dir": str(model_dir),
                            "max_model_len": 2048,
                            "max_num_seqs": 16,
                            "extra_flags": ["--dtype", "bfloat16", "--enforce-eager"],
                            "cpu_kvcache_gb": 1,
                            # The fixtures' replicas take cores 0 and 1; core 1 is the one
                            # left idle by the time this module runs (drain test).
                            "cpu_threads_bind": "1",
                            "drain_timeout_s": 20,
                        },
                    }
                ],
            }
        ],
        # Probe every second, so that /health follows the child within a second or two.
        routing={"health_check_interval_s": 1},
    )
    # The gateway answers /health only once the lifespan has started vLLM.
    gw = start_gateway(root / "home", config=config, ready_timeout=READY_TIMEOUT)
    yield gw
    gw.stop()


def _children(gw: GatewayProcess) -> list[int]:
    """The vLLM API-server processes the gateway started (its direct children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == gw.proc.pid and fields[0] != "Z" and API_SERVER in cmdline:
            pids.append(int(entry.name))
    return pids


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _health(gw: GatewayProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{gw.base_url}/health", timeout=10).json()
    return body


def _client(gw: GatewayProcess, timeout: float = 120) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.api_base, api_key=gw.master_key, max_retries=0, timeout=timeout
    )


def _ask(gw: GatewayProcess, *, stream: bool, timeout: float = 120, max_tokens: int = 64) -> str:
    messages = [{"role": "user", "content": "Write a long story about a cat."}]
    with _client(gw, timeout) as client:
        if not stream:
            resp = client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=max_tokens
            )
            return resp.choices[0].message.content or ""
        return "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=max_tokens, stream=True
            )
            if chunk.choices
        )


def test_gateway_started_vllm_and_serves_through_it(gateway: GatewayProcess) -> None:
    children = _children(gateway)
    assert len(children) == 1
    health = _health(gateway)
    assert health == {"status": "ok", "deployments": {DEPLOYMENT: True}}
    with _client(gateway) as client:
        ids = [m.id for m in client.models.list()]
        assert MODEL in ids
        assert set(ids) <= {MODEL, "auto"}  # "auto" is the router's virtual model
        resp = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=12,
            temperature=0,
        )
        assert resp.model == MODEL
        assert resp.choices[0].message.content
        assert resp.usage is not None
        assert 0 < resp.usage.completion_tokens <= 12
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Say hi."}],
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks[-1].usage is not None
        assert chunks[-1].choices == []
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # The child binds loopback only and never sees the key on its command line.
    cmdline = Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")
    assert cmdline[cmdline.index(b"--host") + 1] == b"127.0.0.1"
    assert b"--api-key" not in cmdline
    # Its port refuses requests without the key airlock generated for it.
    port = int(cmdline[cmdline.index(b"--port") + 1])
    unauth = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert unauth.status_code == 401


def test_child_killed_mid_flight_fails_cleanly_and_recovers(gateway: GatewayProcess) -> None:
    (old_pid,) = _children(gateway)
    outcomes: list[str] = []
    lock = threading.Lock()

    def in_flight(stream: bool) -> None:
        try:
            _ask(gateway, stream=stream)
            result = "ok"
        except openai.APIStatusError as exc:
            result = f"status:{exc.status_code}"
        except openai.APIError as exc:  # a stream cut after its first byte: an error event
            result = f"error:{type(exc).__name__}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=in_flight, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # let them reach vLLM
    os.kill(old_pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request hung after the crash"
    assert len(outcomes) == 6
    assert any(o != "ok" for o in outcomes), outcomes  # some were cut
    # A cut non-streamed call gets a 5xx, never a hang or a 500 with a traceback.
    assert all(o == "ok" or o.startswith(("status:50", "error:")) for o in outcomes), outcomes

    # While vLLM restarts, requests are refused at once with 503 + Retry-After; they are
    # not sent to the half-started server (which holds its port long before it answers).
    wait_for(lambda: not _health(gateway)["deployments"][DEPLOYMENT], timeout=15, interval=0.2)
    started = time.monotonic()
    with httpx.Client(timeout=30) as raw:
        refused = raw.post(
            f"{gateway.api_base}/chat/completions",
            headers={"authorization": f"Bearer {gateway.master_key}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert time.monotonic() - started < 5
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["retry-after"]) > 0
    # From the provider (child not ready) or, once the failures above opened it, from the
    # deployment's circuit breaker: either way a fast, retryable 503.
    assert refused.json()["error"]["code"] in ("upstream_unavailable", "service_unavailable")

    # The launcher restarts the child; the same deployment serves again.
    started = time.monotonic()
    answer = ""
    statuses: list[int] = []
    while not answer and time.monotonic() - started < READY_TIMEOUT:
        try:
            answer = _ask(gateway, stream=True, timeout=60)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
            time.sleep(2)
    assert answer
    assert set(statuses) <= {503}  # only "not ready yet" while it restarted
    recovered_after = time.monotonic() - started
    (new_pid,) = _children(gateway)
    assert new_pid != old_pid
    assert not _group_alive(old_pid)  # no orphaned engine core from the killed child
    wait_for(lambda: _health(gateway)["status"] == "ok", timeout=15, interval=0.2)
    assert _ask(gateway, stream=False)
    print(f"managed vLLM served again {recovered_after:.0f}s after the kill")


def test_gateway_shutdown_drains_and_stops_the_child(gateway: GatewayProcess) -> None:
    canary = f"canary{secrets.token_hex(8)}"
    (pid,) = _children(gateway)
    result: dict[str, object] = {}
    first = threading.Event()

    def stream() -> None:
        with _client(gateway) as client:
            pieces = []
            for chunk in client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Write a long story about {canary}."}],
                max_tokens=48,
                stream=True,
            ):
                first.set()
                pieces.extend(c.finish_reason or "" for c in chunk.choices)
            result["finish"] = [p for p in pieces if p]

    reader = threading.Thread(target=stream)
    reader.start()
    assert first.wait(60)
    # SIGTERM: uvicorn finishes the stream, then the lifespan drains and stops vLLM (and
    # uvicorn re-raises the signal once it is done).
    assert gateway.stop(timeout=120) in (0, -signal.SIGTERM)
    assert '"event":"stopped"' in gateway.log_text()
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert result.get("finish") in (["length"], ["stop"])
    assert not _group_alive(pid)
    records = [r for r in access_records(gateway.log_text()) if r.get("requested_model") == MODEL]
    assert records
    assert records[-1]["finish_reason"] in ("length", "stop")
    logs = list((gateway.home / "vllm").glob(f"{DEPLOYMENT}-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text(encoding="utf-8", errors="replace")
    # The start and, when the test above ran, the restart.
    assert text.count("[airlock] launching vLLM") in (1, 2)
    assert canary not in text
    assert canary not in gateway.log_text()
