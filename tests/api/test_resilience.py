"""Resilience end to end: the real gateway (subprocess) in front of real, scripted
upstreams on loopback that fail on cue.

Proves, through the HTTP API: the right number of retries, fallback to another model,
a clean OpenAI-shaped error, no hung request, the connect/first-token/total timeouts,
retries only before the first byte reached the client, Retry-After honoured, the
circuit breaker opening and half-opening, and a client that goes away cancelling the
upstream call. Content never shows up in the gateway's errors or logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.faulty_upstream import (
    FaultyUpstream,
    blackhole_listener,
    drip,
    error,
    hang,
    malformed,
    ok,
    rate_limited,
    reset,
    slow,
)
from tests.support.server import GatewayProcess, start_gateway
from tests.support.spec import assert_valid

SECRET = "zebra-cactus-1729"  # stands for prompt text: must never leave the request
FAST = {"connect": 0.5, "first_token": 0.6, "total": 1.5}
PATIENT = {"connect": 1.0, "first_token": 10, "total": 10}


@dataclass
class Env:
    gw: GatewayProcess
    up: dict[str, FaultyUpstream]


def _dep(name: str, url: str, timeouts: dict[str, float], **kw: Any) -> dict[str, Any]:
    return {
        "provider": "openai-compatible",
        "name": name,
        "base_url": url,
        "timeouts": timeouts,
        **kw,
    }


def _model(name: str, *deps: dict[str, Any], tier: str = "self-hosted") -> dict[str, Any]:
    return {
        "name": name,
        "tier": tier,
        "capabilities": ["chat", "completions", "embeddings"],
        "deployments": list(deps),
    }


def _start(tmp: Path, config: dict[str, Any]) -> GatewayProcess:
    path = tmp / "airlock.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return start_gateway(tmp / "home", config=path)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    names = ("solo", "r1", "r2", "primary", "backup", "patient", "local", "ext")
    ups = {n: FaultyUpstream(n).start() for n in names}
    with blackhole_listener() as dark_port:
        u = {n: s.base_url for n, s in ups.items()}
        config = {
            "models": [
                _model("solo", _dep("solo", u["solo"], FAST)),
                _model("pair", _dep("r1", u["r1"], FAST), _dep("r2", u["r2"], FAST)),
                _model("primary", _dep("primary", u["primary"], FAST)),
                _model("backup", _dep("backup", u["backup"], FAST)),
                # Nothing listens on the discard port: connection refused.
                _model("refused", _dep("refused", "http://127.0.0.1:9/v1", FAST)),
                _model(
                    "dark",
                    _dep(
                        "dark",
                        f"http://127.0.0.1:{dark_port}/v1",
                        {"connect": 0.3, "first_token": 0.6, "total": 1.5},
                    ),
                ),
                _model("patient", _dep("patient", u["patient"], PATIENT)),
                _model("private", _dep("local", u["local"], FAST)),
                _model("public", _dep("ext", u["ext"], FAST), tier="frontier"),
            ],
            "routing": {
                "fallbacks": {
                    "primary": ["backup"],
                    "refused": ["backup"],
                    "dark": ["backup"],
                    "private": ["public"],
                },
                "retry": {
                    "max_attempts": 3,
                    "backoff_base_s": 0.05,
                    "backoff_max_s": 0.1,
                    "retry_after_cap_s": 1.5,
                },
                # Kept out of the way here; the breaker has its own gateway below.
                "breaker": {"failure_threshold": 1000, "reset_after_s": 1},
            },
        }
        gw = _start(tmp_path_factory.mktemp("resilience"), config)
        try:
            yield Env(gw, ups)
        finally:
            gw.stop()
            for s in ups.values():
                s.stop()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "env" in request.fixturenames:
        for s in request.getfixturevalue("env").up.values():
            s.reset()


def _headers(gw: GatewayProcess) -> dict[str, str]:
    return {"authorization": f"Bearer {gw.master_key}"}


def _chat_body(model: str, stream: bool = False, text: str = f"hello {SECRET}") -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return body


def _chat(gw: GatewayProcess, model: str, timeout: float = 15, **kw: Any) -> httpx.Response:
    return httpx.post(
        gw.api_base + "/chat/completions",
        json=_chat_body(model, **kw),
        headers=_headers(gw),
        timeout=timeout,
    )


def _events(resp: httpx.Response) -> list[str]:
    return [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]


def _stream_text(events: list[str]) -> str:
    out = []
    for data in events:
        if data == "[DONE]":
            continue
        obj = json.loads(data)
        for choice in obj.get("choices", []):
            out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert_valid(body, "ErrorResponse")
    assert resp.headers["x-request-id"]
    assert SECRET not in resp.text
    err: dict[str, Any] = body["error"]
    return err


def _settled(up: FaultyUpstream) -> bool:
    return up.active == 0 and all(r.outcome is not None for r in up.requests)


def _no_secret_in_logs(gw: GatewayProcess) -> None:
    assert SECRET not in gw.log_text()


# -- retries and fallback ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_retries_a_failing_upstream_until_it_answers(env: Env, stream: bool) -> None:
    solo = env.up["solo"]
    solo.script(error(500), error(503))
    resp = _chat(env.gw, "solo", stream=stream)
    assert resp.status_code == 200, resp.text
    if stream:
        assert _stream_text(_events(resp)) == "solo0 solo1 solo2 "
    else:
        assert resp.json()["choices"][0]["message"]["content"] == "solo0 solo1 solo2 "
    assert solo.request_count == 3
    assert resp.headers["x-airlock-route"] == "solo"


def test_gives_up_after_max_attempts_with_an_openai_error(env: Env) -> None:
    solo = env.up["solo"]
    # The upstream's error body quotes the prompt, as some servers do.
    echo = json.dumps({"error": {"message": f"cannot do {SECRET}", "code": "x"}}).encode()
    solo.set_default(error(500, body=echo))
    began = time.monotonic()
    resp = _chat(env.gw, "solo")
    err = _error(resp, 502)
    assert err["type"] == "upstream_error"
    assert err["code"] == "upstream_error"
    assert "HTTP 500" in err["message"]
    assert solo.request_count == 3
    assert time.monotonic() - began < 3
    _no_secret_in_logs(env.gw)


def test_a_failing_replica_is_covered_by_the_other(env: Env) -> None:
    env.up["r1"].set_default(error(500))
    served = []
    for _ in range(4):
        resp = _chat(env.gw, "pair")
        assert resp.status_code == 200, resp.text
        served.append(resp.json()["choices"][0]["message"]["content"][:2])
    assert served == ["r2"] * 4
    # Replicas take turns, so r1 was first in line for half of the requests.
    assert env.up["r1"].request_count == 2
    assert env.up["r2"].request_count == 4


@pytest.mark.parametrize("stream", [False, True])
def test_falls_back_to_the_next_model(env: Env, stream: bool) -> None:
    env.up["primary"].set_default(error(503))
    resp = _chat(env.gw, "primary", stream=stream)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-airlock-route"] == "backup"
    assert resp.headers["x-airlock-route-reason"] == "fallback:down"
    if stream:
        events = _events(resp)
        assert json.loads(events[0])["model"] == "backup"
        assert _stream_text(events) == "backup0 backup1 backup2 "
    else:
        assert resp.json()["model"] == "backup"
    assert env.up["primary"].request_count == 3
    assert env.up["backup"].request_count == 1


def test_connection_refused_falls_back_fast(env: Env) -> None:
    began = time.monotonic()
    resp = _chat(env.gw, "refused")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-airlock-route"] == "backup"
    assert time.monotonic() - began < 2


def test_connect_timeout_falls_back(env: Env) -> None:
    # The blackhole port never completes a connect: three 0.3 s connect timeouts.
    began = time.monotonic()
    resp = _chat(env.gw, "dark")
    elapsed = time.monotonic() - began
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-airlock-route"] == "backup"
    assert 0.85 < elapsed < 3


def test_sensitive_request_never_falls_back_to_the_frontier(env: Env) -> None:
    env.up["local"].set_default(error(500))
    text = "Patient John Smith, date of birth 1961-03-02, asks about his results"
    resp = _chat(env.gw, "private", text=text)
    assert resp.status_code >= 500, resp.text
    assert env.up["local"].request_count == 3
    assert env.up["ext"].request_count == 0
    # The same outage without sensitive data is served by the frontier fallback.
    resp = _chat(env.gw, "private", text="what is the capital of France")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-airlock-route"] == "public"


def test_malformed_answer_is_retried(env: Env) -> None:
    env.up["solo"].script(malformed())
    resp = _chat(env.gw, "solo")
    assert resp.status_code == 200, resp.text
    assert env.up["solo"].request_count == 2


def test_embeddings_are_retried_too(env: Env) -> None:
    env.up["solo"].script(reset(after=0))
    resp = httpx.post(
        env.gw.api_base + "/embeddings",
        json={"model": "solo", "input": SECRET},
        headers=_headers(env.gw),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["embedding"] == [0.25, -0.5, 1.0]
    assert env.up["solo"].request_count == 2


# -- Retry-After ---------------------------------------------------------------------------


def test_retry_after_is_waited_for(env: Env) -> None:
    solo = env.up["solo"]
    solo.script(rate_limited("0.8"))
    resp = _chat(env.gw, "solo")
    assert resp.status_code == 200, resp.text
    first, second = solo.requests
    assert second.arrived_at - first.arrived_at >= 0.75


def test_retry_after_beyond_the_cap_goes_back_to_the_client(env: Env) -> None:
    env.up["solo"].script(rate_limited("30"))
    began = time.monotonic()
    resp = _chat(env.gw, "solo")
    err = _error(resp, 429)
    assert err["code"] == "upstream_rate_limited"
    assert resp.headers["retry-after"] == "30"
    # Not retried against a deployment that asked for 30 s of quiet.
    assert env.up["solo"].request_count == 1
    assert time.monotonic() - began < 1.5


# -- timeouts and the first byte ---------------------------------------------------------


def test_first_token_timeout_is_retried_before_anything_is_sent(env: Env) -> None:
    solo = env.up["solo"]
    solo.script(ok(first_chunk_delay_s=5))
    began = time.monotonic()
    resp = _chat(env.gw, "solo", stream=True)
    elapsed = time.monotonic() - began
    assert resp.status_code == 200, resp.text
    events = _events(resp)
    assert events[-1] == "[DONE]"
    assert _stream_text(events) == "solo0 solo1 solo2 "
    assert 0.55 < elapsed < 2.5
    assert solo.wait_until(_settled, 3)
    assert [r.outcome for r in solo.requests] == ["aborted", "completed"]


def test_upstream_that_never_answers_a_stream_is_a_504_not_a_hang(env: Env) -> None:
    solo = env.up["solo"]
    solo.set_default(hang())
    began = time.monotonic()
    resp = _chat(env.gw, "solo", stream=True)
    elapsed = time.monotonic() - began
    err = _error(resp, 504)
    assert err["code"] == "upstream_timeout"
    # Three attempts of 0.6 s (first-token limit), each connection dropped.
    assert solo.request_count == 3
    assert 1.7 < elapsed < 3.5
    assert solo.wait_until(_settled, 3)
    assert {r.outcome for r in solo.requests} == {"aborted"}


def test_json_request_hits_the_total_timeout_once(env: Env) -> None:
    solo = env.up["solo"]
    solo.set_default(hang())
    began = time.monotonic()
    resp = _chat(env.gw, "solo")
    elapsed = time.monotonic() - began
    err = _error(resp, 504)
    assert err["code"] == "upstream_timeout"
    assert solo.request_count == 1  # the total is the request's budget: not retried
    assert 1.4 < elapsed < 2.5
    assert solo.wait_until(_settled, 3)
    assert solo.requests[0].outcome == "aborted"


def test_no_retry_after_the_first_byte(env: Env) -> None:
    solo = env.up["solo"]
    solo.script(reset(after=3))  # role chunk and two words, then a TCP reset
    resp = _chat(env.gw, "solo", stream=True)
    assert resp.status_code == 200
    events = _events(resp)
    assert _stream_text(events[:-1]) == "solo0 solo1 "
    assert "[DONE]" not in events
    err = json.loads(events[-1])
    assert_valid(err, "ErrorResponse")
    assert err["error"]["type"] == "upstream_error"
    assert SECRET not in resp.text
    assert solo.request_count == 1


def test_slow_drip_is_cut_at_the_total_timeout(env: Env) -> None:
    solo = env.up["solo"]
    solo.script(drip(0.4, chunks=20))
    began = time.monotonic()
    resp = _chat(env.gw, "solo", stream=True)
    elapsed = time.monotonic() - began
    events = _events(resp)
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == "upstream_timeout"
    assert 2 <= len(events) - 1 <= 6
    assert 1.4 < elapsed < 2.5
    assert solo.request_count == 1
    assert solo.wait_until(_settled, 3)
    assert solo.requests[0].outcome == "aborted"


# -- the client going away ---------------------------------------------------------------


def test_client_disconnect_mid_stream_cancels_the_upstream(env: Env) -> None:
    patient = env.up["patient"]
    patient.script(drip(0.2, chunks=200))
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            env.gw.api_base + "/chat/completions",
            json=_chat_body("patient", stream=True),
            headers=_headers(env.gw),
        ) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        got = 0
        for line in lines:
            if line.startswith("data: "):
                got += 1
            if got == 3:
                break
    left_at = time.monotonic()
    assert patient.wait_until(_settled, 3)
    assert patient.requests[0].outcome == "aborted"
    assert patient.requests[0].finished_at is not None
    assert patient.requests[0].finished_at - left_at < 1.5


def _disconnect_after(gw: GatewayProcess, body: dict[str, Any], seconds: float) -> float:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.api_base + "/chat/completions", json=body, headers=_headers(gw), timeout=seconds
        )
    return time.monotonic()


def test_client_disconnect_during_a_json_call_cancels_the_upstream(env: Env) -> None:
    patient = env.up["patient"]
    patient.script(slow(2.5))
    left_at = _disconnect_after(env.gw, _chat_body("patient"), 0.5)
    cancelled_soon = patient.wait_until(lambda u: u.requests[0].outcome == "aborted", 1.0)
    assert patient.wait_until(_settled, 5)
    assert cancelled_soon, f"upstream still running {time.monotonic() - left_at:.1f}s later"


def test_client_disconnect_before_the_first_token_cancels_the_upstream(env: Env) -> None:
    patient = env.up["patient"]
    patient.script(ok(first_chunk_delay_s=2.5))
    _disconnect_after(env.gw, _chat_body("patient", stream=True), 0.5)
    cancelled_soon = patient.wait_until(lambda u: u.requests[0].outcome == "aborted", 1.0)
    assert patient.wait_until(_settled, 5)
    assert cancelled_soon


def test_gateway_logs_hold_no_content(env: Env) -> None:
    # Runs after the fault tests above in this module's order: none leaked content.
    _no_secret_in_logs(env.gw)


# -- the circuit breaker -----------------------------------------------------------------


@pytest.fixture(scope="module")
def breaker_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    up = FaultyUpstream("flaky").start()
    config = {
        "models": [_model("flaky", _dep("flaky", up.base_url, FAST))],
        "routing": {
            "retry": {"max_attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02},
            "breaker": {"failure_threshold": 2, "reset_after_s": 1.0},
        },
    }
    gw = _start(tmp_path_factory.mktemp("breaker"), config)
    try:
        yield Env(gw, {"flaky": up})
    finally:
        gw.stop()
        up.stop()


def test_breaker_opens_refuses_then_half_opens(breaker_env: Env) -> None:
    gw, flaky = breaker_env.gw, breaker_env.up["flaky"]
    flaky.set_default(error(500))
    # Two failures open the circuit; the third attempt is not made.
    _error(_chat(gw, "flaky"), 502)
    assert flaky.request_count == 2
    # Open: refused at once, without calling the upstream, with a Retry-After.
    resp = _chat(gw, "flaky")
    err = _error(resp, 503)
    assert err["type"] == "service_unavailable"
    assert resp.headers["retry-after"] == "1"
    assert flaky.request_count == 2
    # Half-open after 1 s: one trial; it fails, so the circuit opens again.
    time.sleep(1.1)
    _error(_chat(gw, "flaky"), 502)
    assert flaky.request_count == 3
    _error(_chat(gw, "flaky"), 503)
    assert flaky.request_count == 3
    # Next trial succeeds: closed again, traffic flows.
    time.sleep(1.1)
    flaky.set_default(ok())
    for _ in range(3):
        assert _chat(gw, "flaky").status_code == 200
    assert flaky.request_count == 6
    assert SECRET not in gw.log_text()


# -- active health checks ----------------------------------------------------------------


@pytest.fixture(scope="module")
def health_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ups = {n: FaultyUpstream(n).start() for n in ("h1", "h2")}
    config = {
        "models": [
            _model(
                "checked",
                _dep("h1", ups["h1"].base_url, FAST),
                _dep("h2", ups["h2"].base_url, FAST),
            )
        ],
        "routing": {
            "breaker": {"failure_threshold": 2, "reset_after_s": 30},
            "health_check_interval_s": 0.2,
        },
    }
    gw = _start(tmp_path_factory.mktemp("health"), config)
    try:
        yield Env(gw, ups)
    finally:
        gw.stop()
        for s in ups.values():
            s.stop()


def test_failing_health_checks_take_a_replica_out_before_any_request(health_env: Env) -> None:
    gw, h1, h2 = health_env.gw, health_env.up["h1"], health_env.up["h2"]
    h1.set_health(ok=False)
    seen = h1.health_checks
    # Probes every 0.2 s; two failed probes open h1's circuit with no traffic at all.
    assert h1.wait_until(lambda u: u.health_checks >= seen + 3, 3)
    for _ in range(4):
        assert _chat(gw, "checked").status_code == 200
    assert h1.request_count == 0
    assert h2.request_count == 4
    # Healthy again: the next probe makes h1 half-open, one request closes it.
    h1.set_health(ok=True)
    seen = h1.health_checks
    assert h1.wait_until(lambda u: u.health_checks >= seen + 2, 3)
    for _ in range(6):
        assert _chat(gw, "checked").status_code == 200
    assert h1.request_count >= 2
