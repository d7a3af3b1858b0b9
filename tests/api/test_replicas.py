"""Two gateway replicas sharing one Redis and one PostgreSQL database.

Both are real ``airlock serve`` processes started at the same moment on a fresh
database (so they migrate it together), with separate homes holding the same audit
key, in front of one loopback upstream. Keys are made once (the CLI, or the admin API
of either replica) in PostgreSQL; limits, budgets, revocations, the ledger and the audit
chain must behave as if there were one gateway.

Isolation: a database of its own per run (dropped afterwards). Redis keys are named
after the API key ids, which are random, so parallel runs cannot collide; the keys of
this run's API keys are deleted afterwards. (The gateway has no config key for a
Redis prefix: every replica uses the limiter's and spend store's default ``airlock:``.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
import yaml

from airlock.privacy.audit.key import KEY_FILENAME, load_or_create_key
from tests.support.faulty_upstream import FaultyUpstream
from tests.support.server import AIRLOCK, GatewayProcess, start_gateway

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

PG_URL = os.environ.get("AIRLOCK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MASTER = "sk-airlock-test-master-key"
# FaultyUpstream answers every chat with 7 prompt + 3 completion tokens.
USAGE_TOKENS = 10
# ``pricey``: $5000/M in, $15000/M out: 7 * 0.005 + 3 * 0.015 = $0.08 per request.
PRICEY_COST_NANOS = 80_000_000
KEY_CACHE_TTL_S = 5.0


def _dsn(url: str, database: str | None = None) -> str:
    """The plain libpq DSN of a SQLAlchemy URL, optionally for another database."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if database is not None:
        dsn = dsn.rsplit("/", 1)[0] + "/" + database
    return dsn


def _sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable ({type(exc).__name__})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Cluster:
    a: GatewayProcess
    b: GatewayProcess
    upstream: FaultyUpstream
    db_url: str
    redis: redis.Redis
    key_ids: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> tuple[GatewayProcess, GatewayProcess]:
        return self.a, self.b

    @property
    def dsn(self) -> str:
        return _dsn(self.db_url)

    def cli(self, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.a.extra_env)
        if home is not None:
            env["AIRLOCK_HOME"] = str(home)
        return subprocess.run(
            [str(AIRLOCK), *args], env=env, capture_output=True, text=True, timeout=90, check=False
        )

    def cli_key(self, *args: str) -> dict[str, Any]:
        """A key made by ``airlock keys create`` against the shared database."""
        done = self.cli("keys", "create", "--json", "--name", "replicas", *args)
        assert done.returncode == 0, done.stderr
        issued: dict[str, Any] = json.loads(done.stdout)
        self.key_ids.append(issued["id"])
        return issued

    def new_key(self, **spec: Any) -> dict[str, Any]:
        """A key made through the admin API of one replica, in turn (the CLI takes
        seconds to start on a loaded machine; it is covered by ``cli_key``)."""
        via = self.replicas[len(self.key_ids) % 2]
        resp = httpx.post(
            via.base_url + "/admin/keys",
            headers={"authorization": f"Bearer {MASTER}"},
            json={"name": "replicas", **spec},
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        issued: dict[str, Any] = resp.json()
        self.key_ids.append(issued["id"])
        return issued


def _config(upstream: FaultyUpstream) -> dict[str, Any]:
    def model(name: str, price_in: float, price_out: float) -> dict[str, Any]:
        return {
            "name": name,
            "tier": "self-hosted",
            "price": {"input_per_mtok": price_in, "output_per_mtok": price_out},
            "deployments": [{"provider": "openai-compatible", "base_url": upstream.base_url}],
        }

    return {
        "models": [model("local", 0.1, 0.2), model("pricey", 5000.0, 15000.0)],
        "access": {"redis_url": REDIS_URL},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    rds = redis.Redis.from_url(REDIS_URL)
    try:
        rds.ping()
    except (redis.RedisError, OSError) as exc:
        rds.close()
        _unavailable(f"Redis at {REDIS_URL}", exc)
    database = "airlock_replicas_" + uuid.uuid4().hex[:12]
    admin_dsn = _dsn(PG_URL)
    try:
        _sql(admin_dsn, f'CREATE DATABASE "{database}"')
    except (OSError, asyncpg.PostgresError) as exc:
        rds.close()
        _unavailable(f"PostgreSQL at {PG_URL}", exc)
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    root = tmp_path_factory.mktemp("replicas")
    homes = [root / "a" / "home", root / "b" / "home"]
    # Replicas must share the audit key (the head is MACed with it); each keeps its
    # own home, hence its own JSONL mirror.
    load_or_create_key(homes[0] / KEY_FILENAME)
    homes[1].mkdir(parents=True)
    shutil.copy2(homes[0] / KEY_FILENAME, homes[1] / KEY_FILENAME)
    with FaultyUpstream("up") as upstream:
        path = root / "airlock.yaml"
        path.write_text(yaml.safe_dump(_config(upstream)))
        env = {"AIRLOCK_DATABASE_URL": db_url}
        key_ids: list[str] = []
        gateways: list[GatewayProcess] = []
        try:
            # Started at the same moment: both migrate the fresh database at once.
            with ThreadPoolExecutor(2) as pool:
                futures = [
                    pool.submit(start_gateway, h, config=path, master_key=MASTER, env=env)
                    for h in homes
                ]
            errors = [exc for f in futures if (exc := f.exception()) is not None]
            gateways = [f.result() for f in futures if f.exception() is None]
            if errors:
                raise errors[0]
            yield Cluster(gateways[0], gateways[1], upstream, db_url, rds, key_ids)
        finally:
            for gw in gateways:
                gw.stop()
            for key_id in key_ids:
                for name in rds.scan_iter(match=f"airlock:*{{{key_id}}}*"):
                    rds.delete(name)
            rds.close()
            _sql(admin_dsn, f'DROP DATABASE "{database}" WITH (FORCE)')


def _chat(
    gw: GatewayProcess,
    key: str,
    model: str = "local",
    *,
    request_id: str | None = None,
    max_tokens: int | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"authorization": f"Bearer {key}"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    return httpx.post(gw.api_base + "/chat/completions", headers=headers, json=body, timeout=30)


def _poll(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_both_replicas_migrated_one_fresh_database_together(cluster: Cluster) -> None:
    rows = _sql(cluster.dsn, "SELECT version_num FROM alembic_version")
    assert len(rows) == 1
    for gw in cluster.replicas:
        assert httpx.get(gw.base_url + "/health", timeout=5).status_code == 200
        assert "Traceback" not in gw.log_text()


def test_a_key_created_once_works_on_both_replicas(cluster: Cluster) -> None:
    key = cluster.cli_key()["key"]
    for gw in cluster.replicas:
        resp = _chat(gw, key)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-airlock-route"] == "local"


def test_a_revoke_on_one_replica_is_seen_by_the_other_within_the_cache_ttl(
    cluster: Cluster,
) -> None:
    issued = cluster.new_key()
    key = issued["key"]
    # Both replicas have the key cached now.
    assert _chat(cluster.a, key).status_code == 200
    assert _chat(cluster.b, key).status_code == 200
    revoked = httpx.delete(
        f"{cluster.a.base_url}/admin/keys/{issued['id']}",
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=30,
    )
    assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    # The replica that revoked it dropped it from its cache at once.
    assert _chat(cluster.a, key).status_code == 401
    refused = _poll(lambda: (r := _chat(cluster.b, key)).status_code == 401 and r, timeout=10)
    seen_after = time.monotonic() - started
    assert refused, "the other replica still accepts the revoked key after 10 s"
    assert "revoked" in refused.json()["error"]["message"]
    # Within the cache TTL, plus one polling round trip on a loaded machine.
    assert seen_after <= KEY_CACHE_TTL_S + 1.0, seen_after


def _refused_for_rate(resp: httpx.Response, kind: str, limit: int) -> None:
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers[f"x-ratelimit-limit-{kind}"] == str(limit)
    error = resp.json()["error"]
    assert error["code"] == "rate_limit_exceeded"


def test_an_rpm_limit_holds_across_replicas_sent_alternately(cluster: Cluster) -> None:
    # rpm=4 refills one request every 15 s: far longer than these requests take.
    key = cluster.new_key(rpm=4)["key"]
    started = time.monotonic()
    answers = [_chat(cluster.replicas[i % 2], key) for i in range(10)]
    assert time.monotonic() - started < 15
    assert [r.status_code for r in answers] == [200] * 4 + [429] * 6
    assert answers[3].headers["x-ratelimit-remaining-requests"] == "0"
    for resp in answers[4:]:
        _refused_for_rate(resp, "requests", 4)


def test_an_rpm_limit_holds_under_concurrent_requests_to_both_replicas(
    cluster: Cluster,
) -> None:
    # rpm=10 refills one request every 6 s. 40 requests at once, 20 on each replica.
    key = cluster.new_key(rpm=10)["key"]
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: (i % 2, _chat(cluster.replicas[i % 2], key)), range(40)))
    elapsed = time.monotonic() - started
    accepted = [side for side, r in answers if r.status_code == 200]
    for _, resp in answers:
        if resp.status_code != 200:
            _refused_for_rate(resp, "requests", 10)
    # Exactly the burst, plus whatever refilled while they ran (none under 6 s).
    assert 10 <= len(accepted) <= 10 + int(elapsed / 6), (len(accepted), elapsed)
    assert set(accepted) == {0, 1}, "both replicas admitted some"


def test_a_tpm_limit_holds_across_replicas(cluster: Cluster) -> None:
    # Each request reserves 2 (prompt estimate) + 8 (max_tokens) = 10 tokens and uses
    # exactly 10, so reconciling changes nothing: tpm=50 admits exactly five, and one
    # more refills only after 12 s.
    issued = cluster.new_key(tpm=50)
    key = issued["key"]
    started = time.monotonic()
    answers = [_chat(cluster.replicas[i % 2], key, max_tokens=8) for i in range(9)]
    assert time.monotonic() - started < 12
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 4
    for resp in answers[5:]:
        _refused_for_rate(resp, "tokens", 50)
        assert resp.json()["error"]["type"] == "tokens"
    # The shared bucket was charged exactly 5 * 10 tokens (refill since is under 10).
    level = float(cluster.redis.hget(f"airlock:rl:{{{issued['id']}}}:tok", "l") or -1)
    assert 0 <= level < USAGE_TOKENS


def _budget_spent(cluster: Cluster, key_id: str) -> int:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    raw = cluster.redis.get(f"airlock:budget:{{{key_id}}}:day:{day}")
    return 0 if raw is None else int(raw)


def test_a_daily_budget_holds_across_replicas(cluster: Cluster) -> None:
    # $0.08 per request, estimated at $0.01 before the call: with $0.20 a day the
    # third request fits (0.16 + 0.01) and the fourth (0.24 + 0.01) does not.
    issued = cluster.new_key(budget_usd_daily=0.2, models=["pricey"])
    statuses = []
    for i in range(5):
        resp = _chat(cluster.replicas[i % 2], issued["key"], "pricey")
        statuses.append(resp.status_code)
        if resp.status_code == 200:
            # The meter adds the real cost once the response is out: wait until the
            # shared counter has it, so the next replica's check sees it.
            want = PRICEY_COST_NANOS * statuses.count(200)
            assert _poll(lambda w=want: _budget_spent(cluster, issued["id"]) >= w, 10)
        else:
            error = resp.json()["error"]
            assert error["type"] == "insufficient_quota"
            assert resp.headers["x-should-retry"] == "false"
    assert statuses == [200, 200, 200, 429, 429]
    assert _budget_spent(cluster, issued["id"]) == 3 * PRICEY_COST_NANOS


def _chain_ids(cluster: Cluster, ids: list[str]) -> list[asyncpg.Record]:
    return _sql(
        cluster.dsn,
        "SELECT idx, request_id, appended_at FROM audit_records "
        "WHERE request_id = ANY($1::text[]) ORDER BY idx",
        ids,
    )


def _mirror_ids(home: Path) -> set[str]:
    path = home / "audit" / "audit.jsonl"
    if not path.exists():
        return set()
    found = set()
    for line in path.read_text(encoding="ascii").splitlines():
        data = json.loads(line).get("data") or {}
        if data.get("request_id"):
            found.add(data["request_id"])
    return found


def test_the_ledger_has_one_row_per_request_and_the_shared_chain_verifies(
    cluster: Cluster,
) -> None:
    key = cluster.new_key(models=["local"])["key"]
    run = uuid.uuid4().hex[:8]
    sent = {f"rep-{run}-{i:03d}": i % 2 for i in range(60)}
    # Concurrent requests on both replicas: both writers extend the one chain at once.
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda rid: _chat(cluster.replicas[sent[rid]], key, request_id=rid), sent)
        )
    assert all(r.status_code == 200 for r in answers), [r.status_code for r in answers]
    assert [r.headers["x-request-id"] for r in answers] == list(sent)
    # A rate-limited request is refused before routing: no row. A budget refusal is
    # routed first, so it has one (status 429).
    limited = cluster.new_key(rpm=1)["key"]
    assert _chat(cluster.b, limited).status_code == 200
    refused_id = f"rep-{run}-limited"
    assert _chat(cluster.a, limited, request_id=refused_id).status_code == 429
    broke = cluster.new_key(budget_usd_daily=0.000001, models=["pricey"])["key"]
    quota_id = f"rep-{run}-quota"
    assert _chat(cluster.b, broke, "pricey", request_id=quota_id).status_code == 429
    ids = [*sent, quota_id]

    def all_rows() -> list[asyncpg.Record] | None:
        rows = _sql(
            cluster.dsn,
            "SELECT request_id, count(*) AS n, max(status) AS status FROM usage "
            "WHERE request_id = ANY($1::text[]) GROUP BY request_id",
            [*ids, refused_id],
        )
        return rows if len(rows) >= len(ids) else None

    rows = _poll(all_rows, timeout=15)
    assert rows, "every request reaches the ledger within 15 s"
    counts = {r["request_id"]: (r["n"], r["status"]) for r in rows}
    assert counts == {**dict.fromkeys(sent, (1, 200)), quota_id: (1, 429)}
    chain = _chain_ids(cluster, [*ids, refused_id])
    assert sorted(r["request_id"] for r in chain) == sorted(ids)
    # Both replicas' records are on the one chain, and its order is the order of
    # appending (append times never go back, whichever replica appended).
    sides = {sent.get(r["request_id"]) for r in chain}
    assert {0, 1} <= sides
    times = [
        r["appended_at"]
        for r in _sql(cluster.dsn, "SELECT appended_at FROM audit_records ORDER BY idx")
    ]
    assert times == sorted(times)

    verify = cluster.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Each replica's own JSONL mirror holds every record, the other replica's too,
    # once that replica has committed again (it catches up from the database).
    for gw in cluster.replicas:
        assert _chat(gw, key).status_code == 200
    for gw in cluster.replicas:
        assert _poll(lambda home=gw.home: set(ids) <= _mirror_ids(home), timeout=15)
        both = cluster.cli("audit", "verify", "--source", "both", home=gw.home)
        assert both.returncode == 0, both.stdout + both.stderr
