"""Bad input of every kind: an OpenAI-shaped 4xx that says what to fix."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.server import GatewayProcess
from tests.support.spec import assert_valid

CHAT = "/v1/chat/completions"


def _post(gw: GatewayProcess, path: str, content: bytes, key: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None or gw.master_key:
        headers["authorization"] = f"Bearer {key or gw.master_key}"
    return httpx.post(gw.base_url + path, content=content, headers=headers, timeout=30)


def _error(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert_valid(body, "ErrorResponse")
    err: dict[str, object] = body["error"]
    assert isinstance(err["message"], str)
    assert len(err["message"]) > 20
    assert resp.headers["x-request-id"]
    return err


@pytest.mark.parametrize(
    ("content", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"", None, "empty"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model", "Missing required"),
        (b'{"model": "smollm2"}', "messages", "Missing required"),
        (b'{"model": "smollm2", "messages": []}', "messages", "at least 1"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model", "string"),
        (
            b'{"model": "smollm2", "messages": [{"role": "wizard", "content": "x"}]}',
            "messages[0].role",
            "'user'",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": 3}',
            "temperature",
            "less than or equal to 2",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": "ten"}',
            "max_tokens",
            "integer",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"response_format": {"type": "yaml"}}',
            "response_format",
            "json_object",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "tool", "content": "x"}]}',
            "messages[0]",
            "tool_call_id",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"stop": ["a", "b", "c", "d", "e"]}',
            "stop",
            "at most 4",
        ),
        # Booleans are not guessed from strings or numbers ("yes" is not true).
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"stream": "yes"}',
            "stream",
            "valid boolean",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"stream": true, "stream_options": {"include_usage": 1}}',
            "stream_options.include_usage",
            "valid boolean",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"parallel_tool_calls": "false"}',
            "parallel_tool_calls",
            "valid boolean",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"logit_bias": {"abc": 1}}',
            "logit_bias",
            "token ids",
        ),
    ],
)
def test_malformed_chat_requests_get_400(
    gateway: GatewayProcess, content: bytes, param: str | None, words: str
) -> None:
    err = _error(_post(gateway, CHAT, content), 400)
    assert err["param"] == param
    assert words in str(err["message"])


def test_error_messages_do_not_echo_values(gateway: GatewayProcess) -> None:
    canary = "ZEBRA-CANARY-7731"
    bodies = [
        b'{"model": "smollm2", "messages": [{"role": "%s", "content": "x"}]}',
        b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
        b'"response_format": {"type": "%s"}}',
        b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
        b'"temperature": "%s"}',
        b'{"model": "smollm2", "messages": [{"role": "user", "content": "%s"}], "n": 3}',
    ]
    for body in bodies:
        resp = _post(gateway, CHAT, body % canary.encode())
        assert resp.status_code == 400
        assert canary not in resp.text


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "n": 2}', "n"),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], '
            b'"logprobs": true}',
            "logprobs",
        ),
        (
            b'{"model": "smollm2", "messages": [{"role": "user", "content": [{"type": '
            b'"image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}',
            "messages[0].content",
        ),
    ],
)
def test_unsupported_parameter_values(gateway: GatewayProcess, content: bytes, param: str) -> None:
    err = _error(_post(gateway, CHAT, content), 400)
    assert err["param"] == param
    assert err["code"] == "unsupported_parameter"


def test_embeddings_bad_input(gateway: GatewayProcess) -> None:
    err = _error(
        _post(
            gateway,
            "/v1/embeddings",
            b'{"model": "all-minilm-l6-v2", "input": "x", "dimensions": 64}',
        ),
        400,
    )
    assert err["param"] == "dimensions"
    err = _error(
        _post(gateway, "/v1/embeddings", b'{"model": "all-minilm-l6-v2", "input": ""}'), 400
    )
    assert err["param"] is not None
    assert "input" in str(err["param"])
    err = _error(_post(gateway, "/v1/embeddings", b'{"model": "smollm2", "input": "x"}'), 400)
    assert err["param"] == "model"


def test_completions_booleans_are_strict(gateway: GatewayProcess) -> None:
    for field in (b'"echo": "no"', b'"stream": 0'):
        body = b'{"model": "smollm2", "prompt": "x", ' + field + b"}"
        err = _error(_post(gateway, "/v1/completions", body), 400)
        assert err["param"] == field.split(b'"')[1].decode()
        assert "valid boolean" in str(err["message"])


def test_chat_on_embedding_model_is_refused(gateway: GatewayProcess) -> None:
    err = _error(
        _post(
            gateway,
            CHAT,
            b'{"model": "all-minilm-l6-v2", "messages": [{"role": "user", "content": "x"}]}',
        ),
        400,
    )
    assert err["param"] == "model"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(
            model="gpt-17", messages=[{"role": "user", "content": "hello"}]
        )
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-17")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key", "Basic abc", "Bearer", "sk-airlock-test-master-key"],
)
def test_missing_or_bad_key_is_401(gateway: GatewayProcess, header: str | None) -> None:
    headers = {"authorization": header} if header is not None else {}
    resp = httpx.get(gateway.base_url + "/v1/models", headers=headers, timeout=10)
    err = _error(resp, 401)
    assert "wrong-key" not in str(err["message"])


def test_openai_client_with_bad_key(gateway: GatewayProcess) -> None:
    bad = openai.OpenAI(base_url=gateway.api_base, api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_body_over_limit_is_413(gateway: GatewayProcess) -> None:
    big = (
        b'{"model": "smollm2", "messages": [{"role": "user", "content": "'
        + b"a" * (9 * 1024 * 1024)
        + b'"}]}'
    )
    err = _error(_post(gateway, CHAT, big), 413)
    assert "limit" in str(err["message"])


def test_unknown_url_and_method(gateway: GatewayProcess) -> None:
    _error(httpx.get(gateway.base_url + "/v1/nope", timeout=10), 404)
    resp = httpx.get(
        gateway.base_url + CHAT,
        headers={"authorization": f"Bearer {gateway.master_key}"},
        timeout=10,
    )
    _error(resp, 405)


def test_request_id_is_honoured_only_when_sane(gateway: GatewayProcess) -> None:
    auth = {"authorization": f"Bearer {gateway.master_key}"}
    mine = "client-req-0123456789"
    resp = httpx.get(
        gateway.base_url + "/v1/models", headers={**auth, "x-request-id": mine}, timeout=10
    )
    assert resp.headers["x-request-id"] == mine
    resp = httpx.get(
        gateway.base_url + "/v1/models",
        headers={**auth, "x-request-id": "has spaces and <html>"},
        timeout=10,
    )
    assert resp.headers["x-request-id"].startswith("req_")


def test_health_needs_no_auth(gateway: GatewayProcess) -> None:
    resp = httpx.get(gateway.base_url + "/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
