"""The admin API on a minimal Starlette app over a real KeyStore and Ledger (SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from airlock.access.authenticate import Authenticator
from airlock.access.keys import KeyStore
from airlock.access.master_key import hash_key
from airlock.access.principal import Principal
from airlock.api.admin import admin_routes
from airlock.api.responses import error_response
from airlock.errors import AirlockError
from airlock.ledger.db import make_engine
from airlock.ledger.record import RequestRecord
from airlock.ledger.runtime import Ledger, LedgerOptions, open_ledger

pytestmark = pytest.mark.anyio

MASTER = "alk_master_key_for_admin_tests_000000000"
SECRET = "my secret prompt 536-22-1234"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class _Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Gateway:
    """The three things the admin handlers use of ``api.gateway.Gateway``."""

    keys: KeyStore | None
    ledger: Ledger | None
    authenticator: Authenticator

    async def authenticate(self, request: Request) -> Principal:
        return await self.authenticator.authenticate(request.headers.get("authorization"))


async def _airlock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AirlockError)
    return error_response(exc)


def _app(gw: _Gateway) -> Starlette:
    app = Starlette(
        routes=admin_routes(),
        exception_handlers={AirlockError: _airlock_error},
    )
    app.state.gateway = gw
    return app


@dataclass
class Env:
    gw: _Gateway
    http: httpx.AsyncClient
    clock: _Clock

    async def create(self, token: str = MASTER, **body: Any) -> httpx.Response:
        return await self.http.post("/admin/keys", json={"name": "app", **body}, headers=_h(token))

    async def new_key(self, **body: Any) -> tuple[str, str]:
        r = await self.create(**body)
        assert r.status_code == 201, r.text
        return r.json()["key"], r.json()["id"]


def _h(token: str | None) -> dict[str, str]:
    return {} if token is None else {"authorization": f"Bearer {token}"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    ledger = await open_ledger(
        f"sqlite+aiosqlite:///{tmp_path / 'airlock.db'}",
        home=tmp_path,
        options=LedgerOptions(flush_interval=0.02, mirror=False),
    )
    clock = _Clock()
    keys = KeyStore(ledger.engine, clock=clock)
    gw = _Gateway(keys, ledger, Authenticator(hash_key(MASTER), (keys.verify_token,)))
    transport = httpx.ASGITransport(app=_app(gw))
    async with httpx.AsyncClient(transport=transport, base_url="http://airlock") as http:
        yield Env(gw, http, clock)
    await ledger.aclose()


# -- keys --------------------------------------------------------------------------------


async def test_create_returns_the_key_once_with_its_policy(env: Env) -> None:
    expires = (env.clock.now + timedelta(days=30)).replace(microsecond=0)
    r = await env.create(
        name="billing app",
        tenant="acme",
        models=["smollm2", "gpt-4o"],
        regions=["eu"],
        rpm=60,
        tpm=10_000,
        budget_usd_daily=5,
        budget_usd_monthly=100.5,
        expires_at=expires.isoformat(),
        privacy_policy="self-hosted-only",
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["key"].startswith("alk_")
    assert len(body["key"]) == 44
    assert body["id"].startswith("key_")
    assert body["prefix"] == body["key"][:12]
    assert body["models"] == ["gpt-4o", "smollm2"]
    assert body["regions"] == ["eu"]
    assert (body["rpm"], body["tpm"]) == (60, 10_000)
    assert (body["budget_usd_daily"], body["budget_usd_monthly"]) == (5, 100.5)
    assert body["expires_at"] == expires.isoformat()
    assert body["privacy_policy"] == "self-hosted-only"
    assert body["is_admin"] is False
    assert body["revoked_at"] is None
    # The key works, as the tenant's own (non-admin) principal.
    assert env.gw.keys is not None
    principal = await env.gw.keys.authenticate(body["key"])
    assert (principal.id, principal.tenant, principal.rpm) == (body["id"], "acme", 60)


async def test_list_and_get_never_show_a_secret_or_hash(env: Env) -> None:
    key_a, id_a = await env.new_key(name="a", tenant="acme")
    key_b, id_b = await env.new_key(name="b", tenant="globex")
    r = await env.http.get("/admin/keys", headers=_h(MASTER))
    assert r.status_code == 200
    data = r.json()["data"]
    assert sorted(k["id"] for k in data) == sorted([id_a, id_b])
    assert all("key" not in k and "key_hash" not in k for k in data)
    for secret in (key_a, key_b, hash_key(key_a), hash_key(key_b)):
        assert secret not in r.text
    only_acme = await env.http.get("/admin/keys", params={"tenant": "acme"}, headers=_h(MASTER))
    assert [k["id"] for k in only_acme.json()["data"]] == [id_a]
    one = await env.http.get(f"/admin/keys/{id_b}", headers=_h(MASTER))
    assert one.status_code == 200
    assert one.json()["name"] == "b"
    assert key_b not in one.text
    bad = await env.http.get("/admin/keys", params={"active": "maybe"}, headers=_h(MASTER))
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "active"
    missing = await env.http.get("/admin/keys/key_doesnotexist", headers=_h(MASTER))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_rotate_issues_a_new_secret_and_the_old_one_stops_working(env: Env) -> None:
    old, key_id = await env.new_key(tenant="acme")
    assert (await env.http.get("/admin/usage", headers=_h(old))).status_code == 200
    r = await env.http.post(f"/admin/keys/{key_id}/rotate", headers=_h(MASTER))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    new = r.json()["key"]
    assert new != old
    assert r.json()["id"] == key_id
    assert r.json()["rotated_at"] is not None
    assert (await env.http.get("/admin/usage", headers=_h(old))).status_code == 401
    assert (await env.http.get("/admin/usage", headers=_h(new))).status_code == 200


async def test_revoke_stops_the_key_and_active_listing_hides_it(env: Env) -> None:
    key, key_id = await env.new_key()
    _, other_id = await env.new_key(name="other")
    r = await env.http.delete(f"/admin/keys/{key_id}", headers=_h(MASTER))
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    denied = await env.http.get("/admin/usage", headers=_h(key))
    assert denied.status_code == 401
    assert "revoked" in denied.json()["error"]["message"]
    active = await env.http.get("/admin/keys", params={"active": "true"}, headers=_h(MASTER))
    assert [k["id"] for k in active.json()["data"]] == [other_id]
    # Revoking again is harmless; rotating a revoked key is refused.
    again = await env.http.delete(f"/admin/keys/{key_id}", headers=_h(MASTER))
    assert again.json()["revoked_at"] == r.json()["revoked_at"]
    rotate = await env.http.post(f"/admin/keys/{key_id}/rotate", headers=_h(MASTER))
    assert rotate.status_code == 400
    assert "revoked" in rotate.json()["error"]["message"]


async def test_an_expired_key_is_refused_but_still_listed(env: Env) -> None:
    expires = env.clock.now + timedelta(hours=1)
    key, key_id = await env.new_key(expires_at=expires.isoformat())
    assert (await env.http.get("/admin/usage", headers=_h(key))).status_code == 200
    env.clock.now += timedelta(hours=2)
    r = await env.http.get("/admin/usage", headers=_h(key))
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]
    listed = await env.http.get(f"/admin/keys/{key_id}", headers=_h(MASTER))
    assert listed.json()["expires_at"] is not None
    assert listed.json()["revoked_at"] is None
    past = await env.create(expires_at=(env.clock.now - timedelta(minutes=1)).isoformat())
    assert past.status_code == 400
    assert past.json()["error"]["param"] == "expires_at"


async def test_an_admin_key_may_manage_keys_and_a_plain_key_may_not(env: Env) -> None:
    admin, _ = await env.new_key(name="ops", is_admin=True)
    plain, plain_id = await env.new_key(name="app")
    created = await env.create(token=admin, name="made-by-ops")
    assert created.status_code == 201
    calls = [
        ("POST", "/admin/keys", {"name": "x"}),
        ("GET", "/admin/keys", None),
        ("GET", f"/admin/keys/{plain_id}", None),
        ("POST", f"/admin/keys/{plain_id}/rotate", None),
        ("DELETE", f"/admin/keys/{plain_id}", None),
    ]
    for method, url, body in calls:
        r = await env.http.request(method, url, json=body, headers=_h(plain))
        assert r.status_code == 403, (method, url)
        assert r.json()["error"]["type"] == "permission_denied"
        anon = await env.http.request(method, url, json=body)
        assert anon.status_code == 401, (method, url)
        wrong = await env.http.request(method, url, json=body, headers=_h("alk_" + "x" * 40))
        assert wrong.status_code == 401, (method, url)
    # The 403s changed nothing.
    info = await env.http.get(f"/admin/keys/{plain_id}", headers=_h(admin))
    assert info.json()["revoked_at"] is None
    assert info.json()["rotated_at"] is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": "app", "rpm": "60"}, "rpm"),
        ({"name": "app", "rpm": True}, "rpm"),
        ({"name": "app", "rpm": 0}, "rpm"),
        ({"name": "app", "tpm": 1.5}, "tpm"),
        ({"name": "app", "budget_usd_daily": -1}, "budget_usd_daily"),
        ({"name": "app", "budget_usd": 5}, "budget_usd"),
        ({"name": "app", "models": []}, "models"),
        ({"name": "app", "models": "smollm2"}, "models"),
        ({"name": "app", "regions": ["EU West"]}, "regions"),
        ({"name": "app", "tenant": "acme corp!"}, "tenant"),
        ({"name": "app", "privacy_policy": "none"}, "privacy_policy"),
        ({"name": "app", "is_admin": "yes"}, "is_admin"),
        ({"name": "app", "expires_at": "next tuesday"}, "expires_at"),
        ({"name": SECRET + "\n"}, "name"),
    ],
)
async def test_bad_create_bodies_get_a_400_naming_the_field(
    env: Env, body: dict[str, Any], param: str
) -> None:
    r = await env.http.post("/admin/keys", json=body, headers=_h(MASTER))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert "secret" not in error["message"]
    assert "536" not in error["message"]
    assert (await env.http.get("/admin/keys", headers=_h(MASTER))).json()["data"] == []


async def test_bodies_that_are_not_a_json_object_get_a_400_or_413(env: Env) -> None:
    for raw in (b"", b"{not json", b"[1, 2]", b'"name"'):
        r = await env.http.post("/admin/keys", content=raw, headers=_h(MASTER))
        assert r.status_code == 400, raw
    huge = b'{"name": "' + b"a" * 100_000 + b'"}'
    r = await env.http.post("/admin/keys", content=huge, headers=_h(MASTER))
    assert r.status_code == 413


async def test_services_that_are_not_configured_answer_503(env: Env) -> None:
    keys, ledger = env.gw.keys, env.gw.ledger
    env.gw.keys, env.gw.ledger = None, None
    try:
        r = await env.http.get("/admin/keys", headers=_h(MASTER))
        assert r.status_code == 503
        assert "key store" in r.json()["error"]["message"]
        r = await env.http.get("/admin/usage", headers=_h(MASTER))
        assert r.status_code == 503
        assert "ledger" in r.json()["error"]["message"]
        # Authentication still comes first.
        assert (await env.http.get("/admin/keys")).status_code == 401
    finally:
        env.gw.keys, env.gw.ledger = keys, ledger


async def test_a_database_failure_is_a_503_naming_only_the_error_type(
    env: Env, tmp_path: Path
) -> None:
    broken = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    good = env.gw.keys
    env.gw.keys = KeyStore(broken)
    try:
        r = await env.create(name="app")
    finally:
        env.gw.keys = good
        await broken.dispose()
    assert r.status_code == 503
    assert r.json()["error"]["message"].startswith("The key store is unavailable right now")
    assert "x.db" not in r.text
    assert "INSERT" not in r.text


# -- usage -------------------------------------------------------------------------------


def _record(
    n: int, principal: str, tenant: str, day: int, model: str, cost: float
) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{n}",
        timestamp=datetime(2025, 6, day, 12, 0, tzinfo=UTC),
        principal_id=principal,
        tenant=tenant,
        key_kind="api_key",
        endpoint="/v1/chat/completions",
        requested_model=model,
        served_model=model,
        deployment=f"{model}-0",
        provider="openai-compatible",
        region="eu",
        tier="self-hosted",
        route_reason="explicit",
        sensitive=False,
        prompt_tokens=100,
        completion_tokens=10,
        cost_usd=cost,
        baseline_cost_usd=2 * cost,
    )


async def _seed(env: Env, acme_key_id: str) -> None:
    assert env.gw.ledger is not None
    records = [
        _record(1, acme_key_id, "acme", 1, "smollm2", 0.01),
        _record(2, acme_key_id, "acme", 2, "gpt-4o", 0.10),
        _record(3, "key_acmeother", "acme", 2, "smollm2", 0.02),
        _record(4, "key_globex", "globex", 1, "gpt-4o", 1.00),
        _record(5, "key_globex", "globex", 3, "gpt-4o", 1.00),
    ]
    for record in records:
        await env.gw.ledger.writer.submit(record)
    await env.gw.ledger.writer.flush()


def _groups(body: dict[str, Any]) -> dict[str, int]:
    return {row["group"]: row["requests"] for row in body["rows"]}


async def test_an_admin_sees_usage_of_every_tenant(env: Env) -> None:
    admin, _ = await env.new_key(name="ops", is_admin=True, tenant="ops")
    await _seed(env, "key_acme")
    for token in (MASTER, admin):
        r = await env.http.get("/admin/usage", params={"by": "tenant"}, headers=_h(token))
        assert r.status_code == 200
        body = r.json()
        assert body["tenant"] is None
        assert body["by"] == "tenant"
        assert _groups(body) == {"acme": 3, "globex": 2}
        assert body["total"]["cost_usd"] == pytest.approx(2.13)
        assert body["total"]["savings_usd"] == pytest.approx(2.13)
    one = await env.http.get(
        "/admin/usage", params={"by": "model", "tenant": "globex"}, headers=_h(MASTER)
    )
    assert one.json()["tenant"] == "globex"
    assert _groups(one.json()) == {"gpt-4o": 2}


async def test_a_non_admin_sees_only_its_own_tenant(env: Env) -> None:
    key, key_id = await env.new_key(tenant="acme")
    await _seed(env, key_id)
    r = await env.http.get("/admin/usage", params={"by": "key"}, headers=_h(key))
    assert r.status_code == 200
    body = r.json()
    assert body["tenant"] == "acme"
    assert _groups(body) == {key_id: 2, "key_acmeother": 1}
    assert "globex" not in r.text
    other = await env.http.get("/admin/usage", params={"tenant": "globex"}, headers=_h(key))
    assert other.status_code == 403
    assert other.json()["error"]["param"] == "tenant"
    own = await env.http.get("/admin/usage", params={"tenant": "acme"}, headers=_h(key))
    assert own.status_code == 200
    assert own.json()["total"]["requests"] == 3
    assert (await env.http.get("/admin/usage")).status_code == 401


async def test_usage_is_limited_to_the_time_window_and_grouped_by_day(env: Env) -> None:
    await _seed(env, "key_acme")
    r = await env.http.get(
        "/admin/usage",
        params={"by": "day", "since": "2025-06-02", "until": "2025-06-03T00:00:00Z"},
        headers=_h(MASTER),
    )
    assert r.status_code == 200
    body = r.json()
    assert _groups(body) == {"2025-06-02": 2}
    assert body["since"] == "2025-06-02T00:00:00+00:00"
    assert body["until"] == "2025-06-03T00:00:00+00:00"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"by": "user"}, "by"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-45"}, "until"),
        ({"since": "2025-06-03", "until": "2025-06-01"}, "since"),
        ({"group_by": "key"}, "group_by"),
        ({"by": SECRET}, "by"),
        ({"since": SECRET}, "since"),
    ],
)
async def test_bad_usage_queries_get_a_400_naming_the_parameter(
    env: Env, params: dict[str, str], param: str
) -> None:
    r = await env.http.get("/admin/usage", params=params, headers=_h(MASTER))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert "secret" not in r.text
