"""Invariants 1, 4 and 5 through the real server (the canary sweep is test_canary.py).

1. Content logging cannot be turned on: a config asking for it is refused at start-up,
   naming the key, and no environment variable, request header or body field makes the
   gateway log content.
4. Every request that reaches the router leaves exactly one audit record and one ledger
   row, also when the client disconnects (mid-stream, before the first token, during a
   JSON call) and when the process is stopped gracefully with requests in flight.
5. A batch of bad inputs (bodies, parameters, headers, methods, URLs) gets
   OpenAI-shaped 4xx errors: never a 500, never a hang.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.faulty_upstream import Fault, FaultyUpstream, drip, ok, slow
from tests.support.server import AIRLOCK, GatewayProcess, start_gateway
from tests.support.spec import assert_valid

_EMBEDDED = [
    {
        "name": "smollm2",
        "tier": "self-hosted",
        "capabilities": ["chat", "completions", "json_mode", "tools"],
        "deployments": [{"provider": "embedded"}],
    },
    {
        "name": "minilm",
        "tier": "self-hosted",
        "capabilities": ["embeddings"],
        "deployments": [{"provider": "embedded-embeddings"}],
    },
]


def _config(upstream: FaultyUpstream, embedded: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "local",
                "tier": "self-hosted",
                "capabilities": ["chat", "completions", "embeddings", "json_mode", "tools"],
                "deployments": [{"provider": "openai-compatible", "base_url": upstream.base_url}],
            },
            *(_EMBEDDED if embedded else []),
        ],
        "routing": {"retry": {"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05}},
        **extra,
    }


def _start(root: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> GatewayProcess:
    root.mkdir(parents=True, exist_ok=True)
    (root / "airlock.yaml").write_text(yaml.safe_dump(config))
    return start_gateway(root / "home", config=root / "airlock.yaml", env=env)


def _auth(gw: GatewayProcess, request_id: str | None = None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {gw.master_key}"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    return headers


def _chat(text: str, **kw: Any) -> dict[str, Any]:
    return {"model": "local", "messages": [{"role": "user", "content": text}], **kw}


def _rows(gw: GatewayProcess, request_id: str) -> tuple[int, int]:
    """(ledger rows, audit records) for one request id, read from the live database."""
    db = gw.home / "airlock.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        usage = conn.execute("SELECT count(*) FROM usage WHERE request_id = ?", (request_id,))
        n_usage = int(usage.fetchone()[0])
        audit = conn.execute(
            "SELECT count(*) FROM audit_records WHERE event = 'request' AND request_id = ?",
            (request_id,),
        )
        n_audit = int(audit.fetchone()[0])
    return n_usage, n_audit


def _usage_row(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    db = gw.home / "airlock.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,)).fetchone()
    return dict(row)


def _exactly_one_record(gw: GatewayProcess, request_id: str, timeout: float = 8) -> None:
    """Wait for the batched writer, then make sure no second record follows."""
    deadline = time.monotonic() + timeout
    while _rows(gw, request_id) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.6)  # three flush intervals: a duplicate would have landed by now
    assert _rows(gw, request_id) == (1, 1)


# -- 1. content logging cannot be turned on ----------------------------------------------


@pytest.mark.parametrize("value", [True, "yes"])
def test_a_config_asking_for_content_logging_is_refused_at_start(
    tmp_path: Path, value: object
) -> None:
    config = {"privacy": {"log_content": value}}
    (tmp_path / "airlock.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [str(AIRLOCK), "serve", "--config", str(tmp_path / "airlock.yaml"), "--port", "0"],
        env={"AIRLOCK_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    # Names the section and the key, and says why.
    assert "privacy:" in done.stderr
    assert "log_content" in done.stderr
    assert "never logs" in done.stderr
    assert "listening" not in done.stdout
    assert not (tmp_path / "home" / "airlock.db").exists()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with FaultyUpstream("inv") as up:
        yield up


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, upstream: FaultyUpstream
) -> Iterator[GatewayProcess]:
    # Environment variables that look like content-logging switches are ignored.
    env = {
        "AIRLOCK_LOG_LEVEL": "debug",
        "AIRLOCK_LOG_CONTENT": "true",
        "AIRLOCK_PRIVACY__LOG_CONTENT": "true",
    }
    gateway = _start(
        tmp_path_factory.mktemp("invariants"),
        _config(upstream, embedded=True, server={"max_body_bytes": 65536}),
        env,
    )
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


def test_no_header_or_body_field_turns_content_logging_on(
    gw: GatewayProcess, upstream: FaultyUpstream
) -> None:
    canary = f"CanaryLogSwitch{uuid.uuid4().hex}"
    asks: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({"x-airlock-log-content": "true"}, {}),
        ({"x-airlock-debug": "1", "x-log-level": "debug", "x-airlock-log": "full"}, {}),
        ({}, {"log_content": True}),
        ({}, {"metadata": {"log": "full", "log_content": "true"}}),
        ({}, {"airlock": {"log_content": True, "privacy": {"log_content": True}}}),
        ({}, {"privacy": {"log_content": True}, "store": True, "debug": True}),
    ]
    ids = []
    for i, (headers, fields) in enumerate(asks):
        rid = f"log-switch-{i:02d}-{uuid.uuid4().hex[:8]}"
        ids.append(rid)
        for stream in (False, True):
            resp = httpx.post(
                gw.api_base + "/chat/completions",
                json=_chat(f"{canary}-{i} please", stream=stream, **fields),
                headers={**_auth(gw, rid), **headers},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
    # Every request reached the upstream with the canary: content was really there.
    assert sum(canary in json.dumps(r.body) for r in upstream.requests) == 2 * len(asks)
    deadline = time.monotonic() + 5
    while not all(rid in gw.log_text() for rid in ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = gw.log_text()
    assert all(rid in log for rid in ids), "the access log lines are missing"
    assert canary not in log
    assert canary.lower() not in log.lower()


# -- 4. one audit record and one ledger row per routed request ---------------------------


def test_client_disconnect_mid_stream_leaves_exactly_one_record(
    gw: GatewayProcess, upstream: FaultyUpstream
) -> None:
    upstream.script(drip(0.2, chunks=60))
    rid = f"gone-midstream-{uuid.uuid4().hex[:8]}"
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            gw.api_base + "/chat/completions",
            json=_chat("hi", stream=True),
            headers=_auth(gw, rid),
        ) as resp,
    ):
        assert resp.status_code == 200
        events = 0
        for line in resp.iter_lines():
            events += line.startswith("data: ")
            if events == 3:
                break
    assert upstream.wait_until(lambda u: u.requests[0].outcome == "aborted", 5)
    _exactly_one_record(gw, rid)
    row = _usage_row(gw, rid)
    assert row["stream"] == 1
    assert row["finish_reason"] == "cancelled"
    assert row["error_type"] == "client_disconnected"


def test_client_disconnect_before_the_first_token_leaves_exactly_one_record(
    gw: GatewayProcess, upstream: FaultyUpstream
) -> None:
    upstream.script(ok(first_chunk_delay_s=1.5))
    rid = f"gone-early-{uuid.uuid4().hex[:8]}"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.api_base + "/chat/completions",
            json=_chat("hi", stream=True),
            headers=_auth(gw, rid),
            timeout=0.5,
        )
    _exactly_one_record(gw, rid)


def test_client_disconnect_during_a_json_call_leaves_exactly_one_record(
    gw: GatewayProcess, upstream: FaultyUpstream
) -> None:
    upstream.script(slow(1.5))
    rid = f"gone-json-{uuid.uuid4().hex[:8]}"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.api_base + "/chat/completions",
            json=_chat("hi"),
            headers=_auth(gw, rid),
            timeout=0.5,
        )
    _exactly_one_record(gw, rid)


def _in_flight(
    gw: GatewayProcess, rid: str, stream: bool, results: dict[str, tuple[int | None, str]]
) -> None:
    try:
        with httpx.stream(
            "POST",
            gw.api_base + "/chat/completions",
            json=_chat("hi", stream=stream),
            headers=_auth(gw, rid),
            timeout=60,
        ) as resp:
            body = resp.read().decode()
        results[rid] = (resp.status_code, body)
    except httpx.HTTPError as exc:
        results[rid] = (None, type(exc).__name__)


def _stop_with_requests_in_flight(
    tmp: Path, fault: Fault, streams: int, jsons: int
) -> tuple[GatewayProcess, dict[str, tuple[int | None, str]], float]:
    results: dict[str, tuple[int | None, str]] = {}
    with FaultyUpstream("drain", default=fault) as up:
        gw = _start(tmp, _config(up))
        tag = uuid.uuid4().hex[:8]
        kinds = {f"inflight-stream-{i:02d}-{tag}": True for i in range(streams)}
        kinds.update({f"inflight-json-{i:02d}-{tag}": False for i in range(jsons)})
        threads = {
            rid: threading.Thread(target=_in_flight, args=(gw, rid, stream, results))
            for rid, stream in kinds.items()
        }
        for t in threads.values():
            t.start()
        assert up.wait_until(lambda u: u.active == len(kinds), 15), "requests never arrived"
        began = time.monotonic()
        code = gw.stop(signal.SIGTERM, timeout=60)
        took = time.monotonic() - began
        for t in threads.values():
            t.join(timeout=30)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean stop
    assert set(results) == set(threads)
    return gw, results, took


def test_graceful_stop_with_requests_in_flight_leaves_one_record_each(tmp_path: Path) -> None:
    # The upstream holds every answer for 2 s (streams then drip for ~2 s more): SIGTERM
    # lands while all of them are in flight.
    gw, results, took = _stop_with_requests_in_flight(
        tmp_path, Fault(delay_s=2.0, chunk_delay_s=0.25, chunks=8), streams=4, jsons=2
    )
    # uvicorn lets in-flight requests finish before the lifespan (and ledger) closes.
    for rid, (status, body) in results.items():
        assert status == 200, (rid, body)
        if "stream" in rid:
            assert body.rstrip().endswith("data: [DONE]"), rid
    assert took < 20
    for rid in results:
        assert _rows(gw, rid) == (1, 1), rid
    assert "Waiting for connections to close" in gw.log_text()


@pytest.mark.slow
def test_streams_cut_by_the_graceful_stop_timeout_still_leave_one_record_each(
    tmp_path: Path,
) -> None:
    # Streams longer than uvicorn's graceful timeout (30 s in ``airlock serve``): the
    # server cancels them, and each must still be metered before the ledger closes.
    gw, results, took = _stop_with_requests_in_flight(
        tmp_path, drip(0.5, chunks=200), streams=3, jsons=0
    )
    assert 29 < took < 50
    for rid, (_, body) in results.items():
        assert "[DONE]" not in body, rid
        assert _rows(gw, rid) == (1, 1), rid
    assert "timeout graceful shutdown exceeded" in gw.log_text()


# -- 5. bad input: OpenAI-shaped 4xx, never a 500, never a hang --------------------------

_CHAT = "/v1/chat/completions"
_BAD_CHAT_BODIES: list[bytes] = [
    b"",
    b"   ",
    b"null",
    b"[]",
    b"42",
    b'"a string"',
    b"true",
    b"{",
    b'{"model": "local", "messages": [',
    b"{}",
    b'{"model": "local"}',
    b'{"model": "local", "messages": []}',
    b'{"model": "local", "messages": null}',
    b'{"model": "local", "messages": "hi"}',
    b'{"model": "local", "messages": [null]}',
    b'{"model": "local", "messages": [1]}',
    b'{"model": "local", "messages": [{}]}',
    b'{"model": "local", "messages": [{"role": "wizard", "content": "x"}]}',
    b'{"model": "local", "messages": [{"role": "user", "content": 123}]}',
    b'{"model": "local", "messages": [{"role": "user", "content": [{"type": "bogus"}]}]}',
    b'{"model": "local", "messages": [{"role": "user", "content": [{"type": "text"}]}]}',
    b'{"model": "local", "messages": [{"role": "tool", "content": "x"}]}',
    b'{"model": "local", "messages": [{"role": "user", "content": "x"}], "extra": NaN}',
    b'{"model": "local", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    b'{"model": "local", "messages": [{"role": "user", "content": "x"}], "n": 1e999}',
    b"[" * 5000 + b"]" * 5000,
    b'{"model": "local", "messages": [{"role": "user", "content": "x"}], "x": '
    + b"[" * 3000
    + b"]" * 3000
    + b"}",
]


def _bad_fields() -> list[dict[str, Any]]:
    base = _chat("x")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    fields: list[dict[str, Any]] = [
        {"model": None},
        {"model": 123},
        {"model": ""},
        {"model": ["local"]},
        {"model": {"name": "local"}},
        {"model": "x" * 5000},
        {"max_tokens": -1},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"max_tokens": "ten"},
        {"max_tokens": 10**30},
        {"max_completion_tokens": -5},
        {"temperature": -1},
        {"temperature": 3},
        {"temperature": "hot"},
        {"top_p": 2},
        {"n": 0},
        {"n": 1000},
        {"stream": [True]},
        {"stream": {"on": True}},
        {"stream_options": {"include_usage": True}},
        {"stop": 123},
        {"stop": {"a": "b"}},
        {"stop": [1, 2]},
        {"response_format": "json"},
        {"response_format": {"type": "bogus"}},
        {"response_format": {"type": "json_schema"}},
        {"response_format": {"type": "json_schema", "json_schema": {"schema": "no"}}},
        {"tools": "x"},
        {"tools": [{}]},
        {"tools": [{"type": "function"}]},
        {"tools": [tool, tool]},
        {"tool_choice": "required"},
        {"tools": [tool], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"tool_choice": "sometimes"},
        {"logit_bias": {"abc": 5}},
        {"logit_bias": {"1": 1000}},
        {"logit_bias": []},
        {"logprobs": True, "top_logprobs": 100},
        {"seed": "x"},
        {"seed": 1.5},
        {"user": 123},
        {"presence_penalty": 5},
        {"frequency_penalty": "high"},
    ]
    return [{**base, **f} for f in fields]


def _bad_requests(gw: GatewayProcess) -> list[tuple[str, str, str, dict[str, str], bytes]]:
    """(label, method, path, headers, body) for each bad input."""
    auth = _auth(gw)
    json_h = {**auth, "content-type": "application/json"}
    out: list[tuple[str, str, str, dict[str, str], bytes]] = []
    for i, body in enumerate(_BAD_CHAT_BODIES):
        out.append((f"chat body {i}", "POST", _CHAT, json_h, body))
    for i, fields in enumerate(_bad_fields()):
        out.append(
            (
                f"chat fields {list(fields)[2:]} #{i}",
                "POST",
                _CHAT,
                json_h,
                json.dumps(fields).encode(),
            )
        )
    completions: list[Any] = [None, 123, [], [1.5], [[1, 2], "x"], {"a": 1}]
    for i, prompt in enumerate(completions):
        body = json.dumps({"model": "local", "prompt": prompt}).encode()
        out.append((f"completions prompt {i}", "POST", "/v1/completions", json_h, body))
    for i, extra in enumerate([{"max_tokens": -1}, {"echo": "x"}, {"suffix": 1}, {"stream": "x"}]):
        body = json.dumps({"model": "local", "prompt": "x", **extra}).encode()
        out.append((f"completions fields {i}", "POST", "/v1/completions", json_h, body))
    inputs: list[Any] = [None, [], [[]], 1.5, {"a": 1}, [None]]
    for i, value in enumerate(inputs):
        body = json.dumps({"model": "local", "input": value}).encode()
        out.append((f"embeddings input {i}", "POST", "/v1/embeddings", json_h, body))
    for i, extra in enumerate([{"encoding_format": "hex"}, {"dimensions": 0}, {"dimensions": "x"}]):
        body = json.dumps({"model": "local", "input": "x", **extra}).encode()
        out.append((f"embeddings fields {i}", "POST", "/v1/embeddings", json_h, body))
    # Checked by the embedded engines themselves (token ids, schemas, context window).
    smol = {"model": "smollm2", "max_tokens": 3}
    schema = {"type": "object", "properties": {"a": {"type": "bogus"}}}
    engine: list[tuple[str, dict[str, Any]]] = [
        ("/v1/completions", {**smol, "prompt": [-1]}),
        ("/v1/completions", {**smol, "prompt": [999_999]}),
        ("/v1/completions", {**smol, "prompt": [[5, 6], [-3]]}),
        ("/v1/chat/completions", {**_chat("x", **smol), "logit_bias": {"999999": 5}}),
        ("/v1/chat/completions", {**_chat("x", **smol), "max_tokens": 10**9}),
        ("/v1/chat/completions", {**_chat("x", **smol), "n": 2}),
        (
            "/v1/chat/completions",
            {
                **_chat("x", **smol),
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "s", "schema": schema},
                },
            },
        ),
        (
            "/v1/chat/completions",
            {
                **_chat("x", **smol),
                "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
                "tool_choice": "required",
            },
        ),
        ("/v1/embeddings", {"model": "minilm", "input": [-1]}),
        ("/v1/embeddings", {"model": "minilm", "input": [[999_999]]}),
        ("/v1/embeddings", {"model": "minilm", "input": [""]}),
        ("/v1/embeddings", {"model": "minilm", "input": "x", "dimensions": 4}),
    ]
    for i, (path, body) in enumerate(engine):
        out.append((f"embedded engine {i}", "POST", path, json_h, json.dumps(body).encode()))
    ok_body = json.dumps(_chat("x")).encode()
    for i, headers in enumerate(
        [
            {},
            {"authorization": "Bearer"},
            {"authorization": "Basic dXNlcjpwYXNz"},
            {"authorization": "Bearer " + "x" * 4000},
            {"authorization": f"Bearer {gw.master_key} extra"},
            {"authorization": gw.master_key},
        ]
    ):
        out.append(
            (
                f"auth header {i}",
                "POST",
                _CHAT,
                {"content-type": "application/json", **headers},
                ok_body,
            )
        )
    for i, headers in enumerate(
        [
            {"x-airlock-prefer": "fast"},
            {"x-airlock-prefer": ""},
            {"x-airlock-max-cost-usd": "-1"},
            {"x-airlock-max-cost-usd": "nan"},
            {"x-airlock-max-cost-usd": "cheap"},
        ]
    ):
        out.append((f"routing header {i}", "POST", _CHAT, {**json_h, **headers}, ok_body))
    big = json.dumps(_chat("x" * 70_000)).encode()
    out.append(("body too large", "POST", _CHAT, json_h, big))
    for method, path in [
        ("GET", _CHAT),
        ("PUT", _CHAT),
        ("DELETE", "/v1/embeddings"),
        ("GET", "/v1/nothing-here"),
        ("POST", "/v1/models"),
        ("GET", "/v1/models/no-such-model"),
        ("GET", "/v1/models/" + "m" * 3000),
        ("GET", "/metrics/x"),
    ]:
        out.append((f"{method} {path[:40]}", method, path, auth, b""))
    out.append(("metrics without a key", "GET", "/metrics", {}, b""))
    for i, body in enumerate(
        [
            b"{",
            b"[]",
            b'{"name": 5}',
            b'{"name": "k", "rpm": -1}',
            b'{"name": "k", "expires": "soon"}',
        ]
    ):
        out.append((f"admin create {i}", "POST", "/admin/keys", json_h, body))
    for query in ("since=garbage", "by=nothing", "since=2030-01-01&until=2020-01-01"):
        out.append((f"admin usage {query}", "GET", f"/admin/usage?{query}", auth, b""))
    out.append(("admin unknown key", "GET", "/admin/keys/key_doesnotexist", auth, b""))
    return out


def test_bad_input_gets_an_openai_shaped_4xx_never_a_500_or_a_hang(gw: GatewayProcess) -> None:
    failures: list[str] = []
    slowest = 0.0
    cases = _bad_requests(gw)
    with httpx.Client(base_url=gw.base_url, timeout=10) as client:
        for label, method, path, headers, body in cases:
            began = time.monotonic()
            try:
                resp = client.request(method, path, headers=headers, content=body)
            except httpx.TimeoutException:
                failures.append(f"{label}: no answer within 10 s")
                continue
            slowest = max(slowest, time.monotonic() - began)
            if not 400 <= resp.status_code < 500:
                failures.append(f"{label}: HTTP {resp.status_code} {resp.text[:200]}")
                continue
            try:
                err = resp.json()
                assert_valid(err, "ErrorResponse")
                assert err["error"]["message"].strip()
            except (ValueError, AssertionError) as exc:
                failures.append(f"{label}: not an OpenAI error body ({exc}): {resp.text[:200]}")
    assert not failures, f"{len(failures)} of {len(cases)} bad inputs:\n" + "\n".join(failures)
    assert slowest < 5
    # Still serving, and nothing reached the last-resort error handler.
    alive = httpx.post(gw.base_url + _CHAT, json=_chat("hi"), headers=_auth(gw), timeout=10)
    assert alive.status_code == 200
    assert '"unhandled_error"' not in gw.log_text()
    assert '"stream_failed"' not in gw.log_text()
