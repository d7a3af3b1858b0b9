"""airlock.client: request ids and metadata-only logs, against the real gateway and a fake."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from airlock.client import LoggedStream, PrivateAsyncClient, PrivateClient
from tests.support.server import GatewayProcess, free_port, start_gateway

MODEL = "smollm2"
PROMPT_CANARY = "zebra-canary-prompt-7f3a9c"
REPLY_CANARY = "okapi-canary-completion-51e2"
KEY_CANARY = "sk-canary-key-0042-do-not-log"
REQ_ID = "req_test_0123456789abcdef"


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Say hello to {PROMPT_CANARY} in one word."}]


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "airlock.client"]


def _only_record(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = _records(caplog)
    assert len(records) == 1, [r.__dict__ for r in records]
    return records[0]


def _assert_clean(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    """No log record (fields, message, formatted text) contains any of ``secrets``."""
    dumped = caplog.text + "".join(
        json.dumps(r.__dict__, default=str) + r.getMessage() for r in caplog.records
    )
    for secret in (PROMPT_CANARY, REPLY_CANARY, KEY_CANARY, *secrets):
        assert secret not in dumped


# --- the real gateway ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    home: Path = tmp_path_factory.mktemp("client-gw") / "home"
    gw = start_gateway(home)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[PrivateClient]:
    with PrivateClient(base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0) as c:
        yield c


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="airlock.client")
    return caplog


def _long_enough(text: str | None) -> str | None:
    # Short outputs ("Hi") would match unrelated log text; the fake covers exact canaries.
    return text if text is not None and len(text.strip()) >= 12 else None


def test_completion_logs_metadata_and_no_content(
    client: PrivateClient, gateway: GatewayProcess, logs: pytest.LogCaptureFixture
) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=_messages(), max_tokens=8, temperature=0, request_id=REQ_ID
    )
    assert reply.choices[0].message.content is not None
    assert reply._request_id == REQ_ID  # the server honoured ours
    rec = _only_record(logs)
    assert rec.levelno == logging.INFO
    assert rec.getMessage() == "chat.completions.create"
    f = rec.__dict__
    assert f["request_id"] == REQ_ID
    assert f["server_request_id"] == REQ_ID
    assert f["model_requested"] == MODEL
    assert f["model_served"] == MODEL
    assert f["route"] == MODEL
    assert f["status"] == 200
    assert f["outcome"] == "ok"
    assert f["stream"] is False
    assert f["prompt_tokens"] > 0
    assert 0 < f["completion_tokens"] <= 8
    assert f["finish_reason"] in {"stop", "length"}
    assert f["duration_ms"] > 0
    assert "ttft_ms" not in f
    assert "error_type" not in f
    _assert_clean(
        logs, gateway.master_key, *filter(None, [_long_enough(reply.choices[0].message.content)])
    )


def test_generated_request_id_is_sent_and_read_back(
    client: PrivateClient, logs: pytest.LogCaptureFixture
) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=2)
    f = _only_record(logs).__dict__
    assert f["request_id"].startswith("req_")
    assert len(f["request_id"]) == 28
    assert f["server_request_id"] == f["request_id"] == reply._request_id


def test_stream_logs_ttft_usage_and_finish_reason(
    client: PrivateClient, gateway: GatewayProcess, logs: pytest.LogCaptureFixture
) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=_messages(),
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, LoggedStream)
    assert not _records(logs)  # logged when the stream ends, not before
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    assert stream.request_id.startswith("req_")
    f = _only_record(logs).__dict__
    assert f["stream"] is True
    assert f["outcome"] == "ok"
    assert f["status"] == 200
    assert f["model_served"] == MODEL
    assert f["route"] == MODEL
    assert 0 < f["ttft_ms"] <= f["duration_ms"]
    assert f["prompt_tokens"] > 0
    assert 0 < f["completion_tokens"] <= 8
    assert f["finish_reason"] in {"stop", "length"}
    assert f["server_request_id"] == stream.request_id == f["request_id"]
    _assert_clean(logs, gateway.master_key, *filter(None, [_long_enough(text)]))


def test_stream_closed_early_is_logged_once_as_closed(
    client: PrivateClient, logs: pytest.LogCaptureFixture
) -> None:
    with client.chat.completions.create(
        model=MODEL, messages=_messages(), max_tokens=16, stream=True
    ) as stream:
        next(stream)
    stream.close()  # a second close does not log again
    f = _only_record(logs).__dict__
    assert f["outcome"] == "closed"
    assert f["prompt_tokens"] is None  # no usage chunk was asked for


def test_error_from_gateway_logs_type_and_status_only(
    client: PrivateClient, logs: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=_messages(), max_tokens=2)
    rec = _only_record(logs)
    assert rec.levelno == logging.WARNING
    f = rec.__dict__
    assert f["error_type"] == "NotFoundError"
    assert f["status"] == 404
    assert f["outcome"] == "error"
    assert f["server_request_id"] == f["request_id"]
    _assert_clean(logs)


def test_bad_api_key_is_never_logged(
    gateway: GatewayProcess, logs: pytest.LogCaptureFixture
) -> None:
    with PrivateClient(base_url=gateway.api_base, api_key=KEY_CANARY, max_retries=0) as c:
        assert KEY_CANARY not in repr(c)
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=2)
    f = _only_record(logs).__dict__
    assert f["status"] == 401
    assert f["error_type"] == "AuthenticationError"
    _assert_clean(logs)


def test_other_resources_are_the_wrapped_clients(client: PrivateClient) -> None:
    assert MODEL in {m.id for m in client.models.list()}
    assert isinstance(client.wrapped, openai.OpenAI)


def test_async_client_completion_and_stream(
    gateway: GatewayProcess, logs: pytest.LogCaptureFixture
) -> None:
    async def main() -> tuple[str | None, str]:
        async with PrivateAsyncClient(
            base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0
        ) as c:
            reply = await c.chat.completions.create(
                model=MODEL, messages=_messages(), max_tokens=4, request_id=REQ_ID
            )
            stream = await c.chat.completions.create(
                model=MODEL,
                messages=_messages(),
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
            parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
            return reply.choices[0].message.content, "".join(parts)

    content, text = anyio.run(main)
    assert content is not None
    records = _records(logs)
    assert [r.__dict__["stream"] for r in records] == [False, True]
    first, second = (r.__dict__ for r in records)
    assert first["request_id"] == REQ_ID == first["server_request_id"]
    assert first["completion_tokens"] > 0
    assert second["outcome"] == "ok"
    assert 0 < second["ttft_ms"] <= second["duration_ms"]
    assert second["completion_tokens"] > 0
    _assert_clean(
        logs, gateway.master_key, *filter(None, [_long_enough(content), _long_enough(text)])
    )


# --- a loopback fake for error paths ---------------------------------------------------------


def _completion_body(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"Hello {REPLY_CANARY}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "fake-served",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class _Fake(BaseHTTPRequestHandler):
    """Behaviour chosen by the requested model; echoes the prompt where a bad upstream would."""

    seen: list[dict[str, str]]

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        rid = self.headers.get("x-request-id", "")
        prompt = body["messages"][0]["content"]
        model = body["model"]
        if model == "ok":
            self._json(200, _completion_body("fake-served"), rid, reason="x" * 300 + PROMPT_CANARY)
        elif model == "fail-500":
            error = {"message": f"upstream choked on: {prompt}", "type": "server_error"}
            self._json(500, {"error": error}, rid)
        elif model == "stream-error":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("x-request-id", rid)
            self.end_headers()
            self.wfile.write(_chunk(f"Hi {REPLY_CANARY}"))
            error = {"error": {"message": f"died while reading {prompt}", "type": "server_error"}}
            self.wfile.write(b"data: " + json.dumps(error).encode() + b"\n\n")
        else:
            self._json(404, {"error": {"message": "no", "type": "invalid_request_error"}}, rid)

    def _json(self, status: int, body: dict[str, Any], rid: str, reason: str = "") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", rid)
        self.send_header("x-airlock-route", "fake-served")
        if reason:
            self.send_header("x-airlock-route-reason", reason)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def fake() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def fake_client(fake: ThreadingHTTPServer) -> Iterator[PrivateClient]:
    base = f"http://127.0.0.1:{fake.server_address[1]}/v1"
    with PrivateClient(base_url=base, api_key=KEY_CANARY, max_retries=0) as c:
        yield c


def test_fake_reply_text_and_odd_headers_are_not_logged(
    fake_client: PrivateClient, fake: ThreadingHTTPServer, logs: pytest.LogCaptureFixture
) -> None:
    reply = fake_client.chat.completions.create(
        model="ok", messages=_messages(), extra_headers={"X-Request-ID": REQ_ID, "x-extra": "1"}
    )
    assert REPLY_CANARY in (reply.choices[0].message.content or "")
    sent = {k.lower(): v for k, v in fake.seen[-1].items()}  # type: ignore[attr-defined]
    assert sent["x-request-id"] == REQ_ID
    assert sent["x-extra"] == "1"
    f = _only_record(logs).__dict__
    assert f["request_id"] == REQ_ID
    assert f["model_requested"] == "ok"
    assert f["model_served"] == "fake-served"
    assert f["route"] == "fake-served"
    assert f["route_reason"] is None  # too long to be metadata: dropped
    assert (f["prompt_tokens"], f["completion_tokens"], f["finish_reason"]) == (11, 3, "stop")
    _assert_clean(logs)


def test_upstream_error_echoing_the_prompt_logs_type_and_status_only(
    fake_client: PrivateClient, logs: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        fake_client.chat.completions.create(model="fail-500", messages=_messages())
    assert PROMPT_CANARY in str(info.value)  # the fake really echoed it
    rec = _only_record(logs)
    f = rec.__dict__
    assert rec.levelno == logging.WARNING
    assert (f["error_type"], f["status"], f["outcome"]) == ("InternalServerError", 500, "error")
    assert f["server_request_id"] == f["request_id"]
    assert f["route"] == "fake-served"
    _assert_clean(logs)


def test_mid_stream_error_logs_type_and_ttft_only(
    fake_client: PrivateClient, logs: pytest.LogCaptureFixture
) -> None:
    stream = fake_client.chat.completions.create(
        model="stream-error", messages=_messages(), stream=True
    )
    first = next(stream)
    with pytest.raises(openai.APIError) as info:
        next(stream)
    assert PROMPT_CANARY in str(info.value)
    assert first.choices[0].delta.content == f"Hi {REPLY_CANARY}"
    f = _only_record(logs).__dict__
    assert (f["error_type"], f["outcome"], f["stream"]) == ("APIError", "error", True)
    assert f["status"] == 200  # the stream had started
    assert f["ttft_ms"] is not None
    assert f["model_served"] == "fake-served"
    _assert_clean(logs)


def test_connection_refused_logs_type_without_status(logs: pytest.LogCaptureFixture) -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    with (
        PrivateClient(base_url=base, api_key=KEY_CANARY, max_retries=0) as c,
        pytest.raises(openai.APIConnectionError),
    ):
        c.chat.completions.create(model="ok", messages=_messages())
    f = _only_record(logs).__dict__
    assert f["error_type"] == "APIConnectionError"
    assert f["status"] is None
    assert f["server_request_id"] is None
    _assert_clean(logs)


def test_async_error_path(fake: ThreadingHTTPServer, logs: pytest.LogCaptureFixture) -> None:
    base = f"http://127.0.0.1:{fake.server_address[1]}/v1"

    async def main() -> None:
        async with PrivateAsyncClient(base_url=base, api_key=KEY_CANARY, max_retries=0) as c:
            with pytest.raises(openai.InternalServerError):
                await c.chat.completions.create(model="fail-500", messages=_messages())

    anyio.run(main)
    f = _only_record(logs).__dict__
    assert (f["error_type"], f["status"]) == ("InternalServerError", 500)
    _assert_clean(logs)


# --- packaging ----------------------------------------------------------------------------------


def test_openai_is_imported_only_when_a_client_is_built() -> None:
    code = (
        "import sys\n"
        "import airlock, airlock.client\n"
        "assert 'openai' not in sys.modules, 'imported eagerly'\n"
        "sys.modules['openai'] = None  # as if not installed\n"
        "try:\n"
        "    airlock.client.PrivateClient(api_key='x')\n"
        "except ImportError as e:\n"
        "    assert 'airlock[client]' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_client_and_kwargs_are_exclusive() -> None:
    with pytest.raises(TypeError):
        PrivateClient(client=openai.OpenAI(api_key="x"), api_key="y")
