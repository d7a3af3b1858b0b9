"""The launcher's crash recovery against a real vLLM: kill -9 while requests are in flight."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import openai
import pytest

from airlock.deploy.launcher import VllmState
from tests.integration.conftest import READY_TIMEOUT, VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _ask(server: VllmServer, *, stream: bool, timeout: float = 60) -> str:
    messages = [{"role": "user", "content": "Write a long story about a cat."}]
    with openai.OpenAI(
        base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=timeout
    ) as client:
        if not stream:
            resp = client.chat.completions.create(
                model=server.model, messages=messages, max_tokens=64
            )
            return resp.choices[0].message.content or ""
        out = []
        for chunk in client.chat.completions.create(
            model=server.model, messages=messages, max_tokens=64, stream=True
        ):
            out.extend(c.delta.content or "" for c in chunk.choices)
        return "".join(out)


def test_kill_9_mid_flight_fails_cleanly_then_recovers(
    vllm_replicas: tuple[VllmServer, VllmServer],
) -> None:
    # Kill the secondary replica so the primary keeps serving other tests' fixtures.
    server = vllm_replicas[1]
    handle = server.handle
    old_pid = handle.pid
    assert old_pid is not None
    restarts_before = handle.restarts
    assert len(_group_members(old_pid)) >= 2  # API server + engine core (+ worker)

    outcomes: list[str] = []
    lock = threading.Lock()

    def in_flight(stream: bool) -> None:
        try:
            _ask(server, stream=stream)
            result = "ok"
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            result = f"failed:{type(exc).__name__}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=in_flight, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # let them reach the engine
    os.kill(old_pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request hung after the crash"
    assert len(outcomes) == 6
    # Every outcome is either an answer or a clean client-side error; at least one was cut.
    assert all(o == "ok" or o.startswith("failed:") for o in outcomes)
    assert any(o.startswith("failed:") for o in outcomes)

    # A request during the outage fails cleanly and fast (connection refused), no hang.
    deadline = time.monotonic() + 60
    while handle.state is VllmState.READY and time.monotonic() < deadline:
        time.sleep(0.2)  # the supervisor notices the exit
    assert handle.state is not VllmState.READY
    # (APITimeoutError is an APIConnectionError: a restarting vLLM may hold the socket.)
    with pytest.raises(openai.APIConnectionError):
        _ask(server, stream=False, timeout=10)

    # The old process group goes away: no orphaned engine core or worker holding memory.
    # (The state flips before the group is killed, so poll briefly.)
    deadline = time.monotonic() + 30
    while _group_members(old_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(old_pid) == []

    # A caller that retries with backoff gets its answer once the launcher has restarted vLLM.
    started = time.monotonic()
    answer = None
    delay = 1.0
    while answer is None and time.monotonic() - started < READY_TIMEOUT:
        try:
            answer = _ask(server, stream=True, timeout=10)
        except openai.APIConnectionError:
            time.sleep(delay)
            delay = min(delay * 2, 15)
    assert answer
    assert handle.state is VllmState.READY
    assert handle.restarts == restarts_before + 1
    assert handle.pid not in (None, old_pid)
    assert _ask(server, stream=False)


def test_replicas_are_independent_servers(vllm_replicas: tuple[VllmServer, VllmServer]) -> None:
    first, second = vllm_replicas
    assert first.base_url != second.base_url
    assert first.handle.pid != second.handle.pid
    for server in vllm_replicas:
        assert _ask(server, stream=False)


def test_drain_lets_an_in_flight_stream_finish_before_vllm_stops(
    vllm_replicas: tuple[VllmServer, VllmServer],
) -> None:
    # Stops the secondary replica for good; the fixtures start a new one when next needed.
    server = vllm_replicas[1]
    handle = server.handle
    old_pid = handle.pid
    assert old_pid is not None
    first_chunk = threading.Event()
    result: dict[str, object] = {}

    def stream() -> None:
        with openai.OpenAI(
            base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=120
        ) as client:
            finish = None
            pieces = 0
            for chunk in client.chat.completions.create(
                model=server.model,
                messages=[{"role": "user", "content": "Write a long story about a cat."}],
                max_tokens=48,
                stream=True,
            ):
                first_chunk.set()
                for choice in chunk.choices:
                    pieces += 1
                    finish = choice.finish_reason or finish
            result["finish"] = finish
            result["pieces"] = pieces
            result["ended"] = time.monotonic()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_chunk.wait(120)
    handle.stop(drain=True)
    stopped = time.monotonic()
    reader.join(timeout=60)
    assert not reader.is_alive()
    # The stream ran to its natural end (not cut by the stop), before the stop returned.
    assert result.get("finish") in ("length", "stop")
    assert int(str(result["pieces"])) > 1
    assert float(str(result["ended"])) <= stopped
    assert handle.state is VllmState.STOPPED
    assert _group_members(old_pid) == []
