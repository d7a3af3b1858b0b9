"""Keys, scopes, limits, budgets, sensitive routing and the ledger, through the real server.

One gateway process fronts two loopback upstreams: ``local`` (self-hosted, eu-west) and
``frontier`` (an external API, us-east). Keys are made with the ``airlock keys`` CLI
against the same AIRLOCK_HOME, exactly as an operator would.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.support.faulty_upstream import FaultyUpstream
from tests.support.server import AIRLOCK, GatewayProcess, start_gateway

SSN_PROMPT = "Patient John Miller, SSN 536-22-1234, asks about his test results."


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FaultyUpstream, FaultyUpstream]]:
    with FaultyUpstream("local") as local, FaultyUpstream("frontier") as frontier:
        yield local, frontier


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> Iterator[GatewayProcess]:
    local, frontier = upstreams
    root = tmp_path_factory.mktemp("access")
    config = {
        "models": [
            {
                "name": "local",
                "tier": "self-hosted",
                "quality": 0.3,
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                "deployments": [
                    {
                        "provider": "openai-compatible",
                        "base_url": local.base_url,
                        "region": "eu-west",
                    }
                ],
            },
            {
                "name": "frontier",
                "tier": "frontier",
                "quality": 0.95,
                "price": {"input_per_mtok": 5000.0, "output_per_mtok": 15000.0},
                "deployments": [
                    {
                        "provider": "openai-compatible",
                        "base_url": frontier.base_url,
                        "region": "us-east",
                    }
                ],
            },
        ],
        "routing": {"auto": {"threshold": 0.0}},
    }
    path = root / "airlock.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = start_gateway(root / "home", config=path)
    yield gateway
    gateway.stop()


def _airlock(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRLOCK), *args],
        env=gw.extra_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _new_key(gw: GatewayProcess, *args: str) -> dict[str, Any]:
    done = _airlock(gw, "keys", "create", "--json", *args)
    assert done.returncode == 0, done.stderr
    issued: dict[str, Any] = json.loads(done.stdout)
    return issued


def _client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.api_base, api_key=key, max_retries=0)


def _chat(gw: GatewayProcess, key: str, model: str, text: str = "hello") -> httpx.Response:
    return httpx.post(
        gw.api_base + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def _poll(check: Any, timeout: float = 8.0) -> Any:
    """Keys are cached for up to 5 s in the serving process; CLI changes show within it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def test_a_created_key_works_and_sees_only_its_models(gw: GatewayProcess) -> None:
    issued = _new_key(gw, "--name", "app", "--models", "local")
    assert issued["key"].startswith("alk_")
    client = _client(gw, issued["key"])
    assert [m.id for m in client.models.list()] == ["local", "auto"]
    resp = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.usage is not None
    assert resp.usage.total_tokens > 0


def test_a_model_outside_the_key_scope_is_403(gw: GatewayProcess) -> None:
    key = _new_key(gw, "--name", "scoped", "--models", "local")["key"]
    resp = _chat(gw, key, "frontier")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "model_not_allowed"


def test_a_region_outside_the_key_scope_is_never_served(
    gw: GatewayProcess, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    _, frontier = upstreams
    before = frontier.request_count
    key = _new_key(gw, "--name", "eu-only", "--regions", "eu-west")["key"]
    resp = _chat(gw, key, "frontier")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "no_allowed_deployment"
    assert _chat(gw, key, "local").status_code == 200
    assert frontier.request_count == before


def test_rotate_and_revoke_take_effect(gw: GatewayProcess) -> None:
    issued = _new_key(gw, "--name", "rotating")
    assert _chat(gw, issued["key"], "local").status_code == 200
    done = _airlock(gw, "keys", "rotate", issued["id"], "--json")
    assert done.returncode == 0, done.stderr
    new_key = json.loads(done.stdout)["key"]
    assert new_key != issued["key"]
    assert _poll(lambda: _chat(gw, issued["key"], "local").status_code == 401)
    assert _chat(gw, new_key, "local").status_code == 200
    assert _airlock(gw, "keys", "revoke", issued["id"]).returncode == 0
    resp = _poll(lambda: (r := _chat(gw, new_key, "local")).status_code == 401 and r)
    assert resp
    assert "revoked" in resp.json()["error"]["message"]


def test_an_expired_key_is_refused(gw: GatewayProcess) -> None:
    # The CLI takes a few seconds to start on a loaded machine: leave it room.
    expires_at = time.time() + 8
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
    key = _new_key(gw, "--name", "short-lived", "--expires", expires)["key"]
    assert _chat(gw, key, "local").status_code == 200
    time.sleep(max(0.0, expires_at - time.time()) + 1.1)
    resp = _chat(gw, key, "local")
    assert resp.status_code == 401
    assert "expired" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "header", [None, "Bearer alk_notarealkey0000000000000000000000", "Basic abc", "Bearer"]
)
def test_missing_or_bad_keys_are_401(gw: GatewayProcess, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    resp = httpx.post(
        gw.api_base + "/chat/completions",
        headers=headers,
        json={"model": "local", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status_code == 401
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_rpm_limit_answers_429_with_retry_after(gw: GatewayProcess) -> None:
    key = _new_key(gw, "--name", "rpm", "--rpm", "3")["key"]
    statuses = [_chat(gw, key, "local") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[0].headers["x-ratelimit-limit-requests"] == "3"
    assert statuses[2].headers["x-ratelimit-remaining-requests"] == "0"
    refused = statuses[3]
    assert float(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_hard_budget_refuses_with_insufficient_quota(gw: GatewayProcess) -> None:
    # frontier: $5000/M in, $15000/M out. The upstream reports 7 + 3 tokens: $0.08.
    # Before the call only the input is estimated (2 tokens: $0.01), so the first
    # request fits the $0.085 budget and the second (0.08 spent + 0.01) does not.
    key = _new_key(gw, "--name", "budget", "--budget-usd", "0.085")["key"]
    first = _chat(gw, key, "frontier")
    assert first.status_code == 200
    time.sleep(0.3)  # spend is recorded by the meter once the response has been sent
    second = _chat(gw, key, "frontier")
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "insufficient_quota"


def test_sensitive_auto_request_is_served_self_hosted_only(
    gw: GatewayProcess, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    _, frontier = upstreams
    key = _new_key(gw, "--name", "clinic")["key"]
    before = frontier.request_count
    # threshold 0.0: anything non-sensitive goes to the strong model ...
    plain = _chat(gw, key, "auto", "What is the capital of France?")
    assert plain.headers["x-airlock-route"] == "frontier"
    # ... but a prompt with an SSN and a patient stays on the self-hosted model.
    resp = _chat(gw, key, "auto", SSN_PROMPT)
    assert resp.status_code == 200
    assert resp.headers["x-airlock-route"] == "local"
    assert frontier.request_count == before + 1
    assert all("536-22-1234" not in json.dumps(r.body) for r in frontier.requests)
    # explicitly asking for the frontier model with sensitive data: 503, never sent
    refused = _chat(gw, key, "frontier", SSN_PROMPT)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "no_compliant_deployment"
    assert frontier.request_count == before + 1


def test_every_routed_request_leaves_one_ledger_row_and_the_chain_verifies(
    gw: GatewayProcess,
) -> None:
    key = _new_key(gw, "--name", "ledger", "--tenant", "ledger-tenant")["key"]
    ids = []
    for text in ("one", "two", SSN_PROMPT):
        resp = _chat(gw, key, "local", text)
        ids.append(resp.headers["x-request-id"])
    refused = _chat(gw, key, "frontier", SSN_PROMPT)
    ids.append(refused.headers["x-request-id"])

    def rows() -> list[dict[str, Any]]:
        done = _airlock(gw, "audit", "export", "--format", "jsonl")
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return [r for r in lines if r.get("data", r).get("request_id") in ids]

    found = _poll(lambda: len(rows()) == len(ids) and rows())
    assert found, "each routed request has exactly one audit record"
    records = [r.get("data", r) for r in found]
    assert sorted(r["request_id"] for r in records) == sorted(ids)
    sensitive = [r for r in records if r["sensitive"]]
    assert len(sensitive) == 2
    assert all(r["entity_counts"].get("US_SSN") == 1 for r in sensitive)
    blocked = next(r for r in records if r["request_id"] == ids[-1])
    assert blocked["status"] == 503
    assert blocked["error_type"] == "no_compliant_deployment"
    verify = _airlock(gw, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = _airlock(gw, "report", "--by", "tenant", "--json")
    assert report.returncode == 0, report.stderr
    assert "ledger-tenant" in report.stdout


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-0f3a9c21-abc", True), ("536-22-1234", False), ("4111111111111111", False)],
)
def test_a_callers_request_id_is_honoured_unless_it_holds_sensitive_data(
    gw: GatewayProcess, sent: str, kept: bool
) -> None:
    resp = httpx.get(
        gw.api_base + "/models",
        headers={"authorization": f"Bearer {gw.master_key}", "x-request-id": sent},
    )
    assert resp.status_code == 200
    assert (resp.headers["x-request-id"] == sent) is kept
