"""Load test: two gateway replicas sharing Redis and PostgreSQL, a fast upstream, many clients.

    .venv/bin/python bench/load_test.py [--duration 60] [--clients 200] [--keys 20] [--rpm 60]

Two real ``airlock serve`` processes share one Redis (rate limits, budgets) and a fresh
PostgreSQL database (keys, ledger, the audit chain), in front of a raw-asyncio upstream
that answers every chat completion at once. A separate client process (the machine may
have only two cores) runs ``--clients`` closed-loop clients, half on each replica, each
with its own keep-alive connection and no back-off on 429, for ``--duration`` seconds,
spread evenly over ``--keys`` API keys limited to ``--rpm`` requests per minute and
``--unlimited-keys`` keys without limits (these keep accepted traffic, hence ledger
writes, flowing once the limited keys are held to their rate). Every request carries
its own ``x-request-id``.

Checks (exit 1 when one fails): no transport errors and only 200 / 429
``rate_limit_exceeded`` answers; exactly one ledger row and one audit record per 200
and none per rate-limited 429 (refused before routing, so never metered); ``airlock
audit verify`` passes on the chain both replicas extended; per limited key, the
requests admitted between its first and last admission ≤ rpm × minutes × 1.01 + rpm
(the bucket starts full), and ≥ 90% of that for a key that was refused at all (the
limiter must not refuse what it owes); unlimited keys are never refused; the gateways
log no errors and shut down cleanly. It prints requests/s, latency percentiles, CPU
per request and what the gateways logged at warning level.

``tests/load/test_load.py`` runs the same thing (pytest -m slow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import redis

__all__ = ["LoadOptions", "LoadReport", "run_load"]

SCRIPT = Path(__file__).resolve()
AIRLOCK = Path(sys.executable).with_name("airlock")
MASTER = "sk-airlock-load-master-key"
PROMPT = "Say hello to the load test."
_CHAT = orjson.dumps(
    {
        "id": "chatcmpl-load",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fast",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
)
# What each check of a report means, by id (tests/load/test_load.py asserts them by id).
CHECKS = {
    "transport": "no transport errors",
    "statuses": "only 200 and 429 rate_limit_exceeded answers (no overload errors)",
    "limits": "rate limits held within 1% on every limited key",
    "allowance": "limited keys got at least 90% of their allowance once refused",
    "unlimited": "unlimited keys were never refused",
    "exercised": "rate limiting was exercised on every limited key",
    "ledger": "one ledger row per 200, none per rate-limited 429, none twice",
    "audit_records": "one audit record per ledger row",
    "audit_verify": "airlock audit verify passes on the shared chain",
    "shutdown": "gateways shut down cleanly",
    "log_errors": "gateways logged no errors",
    "log_warnings": "gateways logged no warnings (pool exhaustion, lost spend)",
}
_MODELS = orjson.dumps({"object": "list", "data": [{"id": "fast", "object": "model"}]})


@dataclass(frozen=True)
class LoadOptions:
    duration: float = 60.0
    clients: int = 200
    keys: int = 20
    rpm: int = 60
    unlimited_keys: int = 4
    pg_url: str = os.environ.get(
        "AIRLOCK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    redis_url: str = os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    log_level: str = "warning"
    workdir: Path | None = None
    keep: bool = False  # keep the logs and samples even when every check passes


@dataclass
class LoadReport:
    options: dict[str, Any]
    elapsed_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    transport_errors: int = 0
    requests_per_s: float = 0.0
    accepted_per_s: float = 0.0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    ledger_rows: int = 0
    audit_records: int = 0
    limit_ratio_max: float = 0.0
    limit_ratio_min: float = 0.0
    gateway_cpu_s: list[float] = field(default_factory=list)
    gateway_cpu_ms_per_request: float = 0.0
    per_5s_min_max: tuple[int, int] = (0, 0)
    client_cpu_s: float = 0.0
    log_events: dict[str, int] = field(default_factory=dict)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.checks.values())

    def check(self, check_id: str, ok: bool, detail: str = "") -> None:
        self.checks[check_id] = (ok, detail)

    def summary(self) -> str:
        total = sum(self.statuses.values())
        lines = [
            f"load test: {self.options['clients']} clients, 2 replicas, "
            f"{self.options['keys']} keys x {self.options['rpm']} rpm + "
            f"{self.options['unlimited_keys']} unlimited, {self.elapsed_s:.1f} s",
            f"  requests: {total} ({self.requests_per_s:.0f}/s), "
            f"accepted {self.statuses.get('200', 0)} ({self.accepted_per_s:.0f}/s), "
            f"statuses {dict(sorted(self.statuses.items()))}, "
            f"transport errors {self.transport_errors}",
            f"  answers per 5 s: min {self.per_5s_min_max[0]}, max {self.per_5s_min_max[1]}",
        ]
        for kind, pct in self.latency_ms.items():
            lines.append(
                f"  latency {kind}: p50 {pct['p50']:.1f} ms, p99 {pct['p99']:.1f} ms, "
                f"max {pct['max']:.1f} ms"
            )
        lines += [
            f"  ledger rows {self.ledger_rows}, audit records {self.audit_records}",
            f"  admitted / token-bucket allowance per limited key: "
            f"{self.limit_ratio_min:.3f} .. {self.limit_ratio_max:.3f}",
            f"  cpu: gateways {', '.join(f'{c:.1f}' for c in self.gateway_cpu_s)} s "
            f"({self.gateway_cpu_ms_per_request:.2f} ms per request), "
            f"client {self.client_cpu_s:.1f} s",
            f"  gateway log events (warning and above): {self.log_events or 'none'}",
        ]
        lines += [
            f"  [{'ok' if ok else 'FAIL'}] {CHECKS[name]}{': ' + detail if detail else ''}"
            for name, (ok, detail) in self.checks.items()
        ]
        return "\n".join(lines)


# -- the upstream (its own process) --------------------------------------------------


class _Upstream(asyncio.Protocol):
    """HTTP/1.1 keep-alive; every POST gets the same completion, every GET the models."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value)
            if len(self._buf) < end + 4 + length:
                return
            del self._buf[: end + 4 + length]
            body = _CHAT if head.startswith(b"post") else _MODELS
            self._transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def _serve_upstream(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        _Upstream, "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


# -- the clients (their own process) -------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return status, headers, bytes(body)
    return status, headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))


async def _client(spec: dict[str, Any], idx: int, deadline: float, out: list[list[Any]]) -> None:
    """One closed-loop client on one connection; reconnects after a transport error."""
    # Clients of one key alternate between the replicas, so each key's limit is shared.
    key_idx = idx % len(spec["keys"])
    side = (idx // len(spec["keys"])) % 2
    port = spec["ports"][side]
    body = orjson.dumps(
        {"model": "fast", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16}
    )
    fixed = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
        b"authorization: Bearer %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n" % (port, spec["keys"][key_idx].encode(), len(body))
    )
    loop = asyncio.get_running_loop()
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    seq = 0
    while loop.time() < deadline:
        rid = f"{spec['run']}-{idx}-{seq}"
        seq += 1
        sent = loop.time()
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = conn
            writer.write(fixed + b"x-request-id: %s\r\n\r\n%s" % (rid.encode(), body))
            status, headers, payload = await asyncio.wait_for(_read_response(reader), 60)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            out.append([rid, key_idx, side, 0, sent, loop.time() - sent, type(exc).__name__])
            if conn is not None:
                conn[1].close()
            conn = None
            continue
        detail = "" if headers.get(b"x-request-id") == rid.encode() else "id-not-echoed"
        if status != 200:
            try:
                detail = detail or str(orjson.loads(payload)["error"]["code"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                detail = "unparsable-error"
        out.append([rid, key_idx, side, status, sent, loop.time() - sent, detail])
    if conn is not None:
        conn[1].close()


async def _run_clients(spec: dict[str, Any]) -> list[list[Any]]:
    loop = asyncio.get_running_loop()
    out: list[list[Any]] = []
    start = loop.time()
    deadline = start + spec["duration"]
    await asyncio.gather(*(_client(spec, i, deadline, out) for i in range(spec["clients"])))
    for row in out:
        row[4] -= start  # send time, seconds from the start
    return out


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- orchestration ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1] * 1000}


def _log_events(paths: list[Path]) -> dict[str, int]:
    """Warning-and-above events the gateways logged (metadata only, by name)."""
    events: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("warning", "error", "critical"):
                    events[f"{entry['level']}:{entry.get('event')}"] += 1
            elif "Traceback" in line or "ERROR" in line:
                events["error:unstructured"] += 1
    return dict(events)


class _Cluster:
    """The database, the upstream and the two replicas; ``close`` undoes everything."""

    def __init__(self, opts: LoadOptions, root: Path) -> None:
        self.opts, self.root = opts, root
        self.database = "airlock_load_" + uuid.uuid4().hex[:12]
        self.db_url = opts.pg_url.rsplit("/", 1)[0] + "/" + self.database
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.ports: list[int] = []
        self.key_ids: list[str] = []
        self.created_db = False

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def start(self) -> None:
        with redis.Redis.from_url(self.opts.redis_url) as rds:
            rds.ping()
        _sql(_dsn(self.opts.pg_url), f'CREATE DATABASE "{self.database}"')
        self.created_db = True
        up_port = _free_port()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
        cmd = [sys.executable, str(SCRIPT), "--role", "upstream", "--port", str(up_port)]
        up = self._spawn("upstream", cmd, base_env)
        _wait_http(f"http://127.0.0.1:{up_port}/v1/models", up, self.logs[-1])
        config = {
            "models": [
                {
                    "name": "fast",
                    "tier": "self-hosted",
                    "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                    "deployments": [
                        {
                            "provider": "openai-compatible",
                            "base_url": f"http://127.0.0.1:{up_port}/v1",
                        }
                    ],
                }
            ],
            "access": {"redis_url": self.opts.redis_url},
        }
        config_path = self.root / "airlock.yaml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        homes = [self.root / "a", self.root / "b"]
        for home in homes:
            home.mkdir()
        # Replicas share the audit key; each keeps its own JSONL mirror.
        key = homes[0] / "audit.key"
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
        shutil.copy2(key, homes[1] / "audit.key")
        for home in homes:
            self.ports.append(_free_port())
            env = dict(base_env, AIRLOCK_HOME=str(home), AIRLOCK_MASTER_KEY=MASTER)
            env["AIRLOCK_DATABASE_URL"] = self.db_url
            cmd = [str(AIRLOCK), "serve", "--config", str(config_path), "--port"]
            cmd += [str(self.ports[-1]), "--log-level", self.opts.log_level]
            self._spawn(f"gateway-{home.name}", cmd, env)
        for i, port in enumerate(self.ports):
            _wait_http(f"http://127.0.0.1:{port}/health", self.procs[1 + i], self.logs[1 + i])

    @property
    def gateways(self) -> list[subprocess.Popen[bytes]]:
        return self.procs[1:3]

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
        return dict(env, AIRLOCK_HOME=str(self.root / "a"), AIRLOCK_DATABASE_URL=self.db_url)

    def create_keys(self) -> list[str]:
        """The limited keys first, then the unlimited ones (alternately on each replica)."""
        keys = []
        with httpx.Client(timeout=60) as http:
            for i in range(self.opts.keys + self.opts.unlimited_keys):
                rpm = self.opts.rpm if i < self.opts.keys else None
                resp = http.post(
                    f"http://127.0.0.1:{self.ports[i % 2]}/admin/keys",
                    headers={"authorization": f"Bearer {MASTER}"},
                    json={"name": f"load-{i}", "rpm": rpm},
                )
                resp.raise_for_status()
                self.key_ids.append(resp.json()["id"])
                keys.append(resp.json()["key"])
        return keys

    def close(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        rds = redis.Redis.from_url(self.opts.redis_url)
        try:
            for key_id in self.key_ids:
                for name in rds.scan_iter(match=f"airlock:*{{{key_id}}}*"):
                    rds.delete(name)
        finally:
            rds.close()
        if self.created_db:
            _sql(_dsn(self.opts.pg_url), f'DROP DATABASE "{self.database}" WITH (FORCE)')


def _run_client_process(spec: dict[str, Any], root: Path) -> tuple[list[list[Any]], float]:
    spec_path, out_path = root / "clients.json", root / "samples.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, str(SCRIPT), "--role", "client", "--spec", str(spec_path)]
    proc = subprocess.Popen([*cmd, "--out", str(out_path)])
    cpu = 0.0
    while proc.poll() is None:
        try:
            cpu = _cpu_s(proc.pid)
        except OSError:
            break
        time.sleep(0.5)
    if proc.wait() != 0:
        raise RuntimeError(f"the client process failed with {proc.returncode}")
    return orjson.loads(out_path.read_bytes()), cpu


def _ledger(cluster: _Cluster, run: str, accepted: set[str]) -> tuple[Counter[str], Counter[str]]:
    """Ledger rows and audit records per request id of this run, once all 200s arrived
    (or after a minute)."""
    dsn = _dsn(cluster.db_url)
    pattern = run + "-%"
    deadline = time.monotonic() + 60
    while True:
        rows = _sql(dsn, "SELECT request_id FROM usage WHERE request_id LIKE $1", pattern)
        usage = Counter(r["request_id"] for r in rows)
        if accepted <= usage.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(1.0)  # anything still queued (there should be nothing) lands now
    rows = _sql(dsn, "SELECT request_id FROM usage WHERE request_id LIKE $1", pattern)
    usage = Counter(r["request_id"] for r in rows)
    recs = _sql(dsn, "SELECT request_id FROM audit_records WHERE request_id LIKE $1", pattern)
    return usage, Counter(r["request_id"] for r in recs)


def _check_limits(report: LoadReport, samples: list[list[Any]], opts: LoadOptions) -> None:
    """Per limited key: admitted ≤ rpm × minutes between its first and last admission
    × 1.01 + rpm (the bucket starts full); ≥ 90% of the allowance once refused."""
    admitted: dict[int, list[tuple[float, float]]] = {}
    refused: Counter[int] = Counter()
    for _rid, key, _side, status, sent, latency, _ in samples:
        if status == 200:
            admitted.setdefault(key, []).append((sent, sent + latency))
        elif status == 429:
            refused[key] += 1
    rpm, over, under, ratios = opts.rpm, [], [], []
    for key in range(opts.keys):
        spans = admitted.get(key, [])
        minutes = (max(e for _, e in spans) - min(s for s, _ in spans)) / 60 if spans else 0.0
        allowance = rpm * minutes + rpm
        ratios.append(len(spans) / allowance)
        if len(spans) > rpm * minutes * 1.01 + rpm:
            over.append(f"key {key}: {len(spans)} > {rpm * minutes * 1.01 + rpm:.1f}")
        if refused[key] and len(spans) < 0.9 * allowance:
            under.append(f"key {key}: {len(spans)} < 90% of {allowance:.1f}")
    report.limit_ratio_min = min(ratios, default=0.0)
    report.limit_ratio_max = max(ratios, default=0.0)
    report.check("limits", not over, "; ".join(over))
    report.check("allowance", not under, "; ".join(under))
    free = sum(n for key, n in refused.items() if key >= opts.keys)
    report.check("unlimited", not free, f"{free} refused" if free else "")
    report.check("exercised", all(refused[k] for k in range(opts.keys)))


def run_load(opts: LoadOptions) -> LoadReport:
    report = LoadReport(options={k: str(v) for k, v in asdict(opts).items()})
    report.options.update(
        clients=opts.clients, keys=opts.keys, rpm=opts.rpm, unlimited_keys=opts.unlimited_keys
    )
    root = Path(tempfile.mkdtemp(prefix="airlock-load-", dir=opts.workdir))
    cluster = _Cluster(opts, root)
    try:
        cluster.start()
        keys = cluster.create_keys()
        run = "lt-" + uuid.uuid4().hex[:10]
        spec = {"run": run, "ports": cluster.ports, "keys": keys}
        spec.update(clients=opts.clients, duration=opts.duration)
        cpu_before = [_cpu_s(p.pid) for p in cluster.gateways]
        samples, report.client_cpu_s = _run_client_process(spec, root)
        report.gateway_cpu_s = [
            _cpu_s(p.pid) - c for p, c in zip(cluster.gateways, cpu_before, strict=True)
        ]
        _analyse(report, samples, opts)
        accepted = {s[0] for s in samples if s[3] == 200}
        refused = {s[0] for s in samples if s[3] == 429 and s[6] == "rate_limit_exceeded"}
        # Rows must arrive while the replicas run (not only in their shutdown flush) ...
        usage, _ = _ledger(cluster, run, accepted)
        missing_live = len(accepted - usage.keys())
        # ... and a graceful shutdown must neither lose nor repeat any.
        codes = [_stop(p) for p in cluster.gateways]
        report.log_events = _log_events(cluster.logs[1:3])
        usage, chain = _ledger(cluster, run, accepted)
        report.ledger_rows, report.audit_records = sum(usage.values()), sum(chain.values())
        # Other answers (overload 503s) may or may not have been routed: 0 or 1 rows.
        answered = {smp[0] for smp in samples if smp[3]}
        dupes = [rid for rid, n in usage.items() if n > 1]
        stray = usage.keys() - answered
        missing = accepted - usage.keys()
        limited = usage.keys() & refused
        report.check(
            "ledger",
            not (dupes or stray or missing or missing_live or limited),
            f"missing {len(missing)} (before shutdown {missing_live}), duplicated "
            f"{len(dupes)}, rows for rate-limited 429s {len(limited)}, for unknown ids "
            f"{len(stray)}",
        )
        report.check("audit_records", chain == usage)
        verify = subprocess.run(
            [str(AIRLOCK), "audit", "verify"],
            env=cluster.cli_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        detail = (verify.stdout + verify.stderr).strip().splitlines()
        report.check("audit_verify", verify.returncode == 0, detail[-1] if detail else "")
        # uvicorn re-raises SIGTERM once it has shut down gracefully.
        clean = all(code in (0, -signal.SIGTERM) for code in codes)
        report.check("shutdown", clean, f"exit codes {codes}")
        warned = {k: v for k, v in report.log_events.items() if k.startswith("warning:")}
        errors = {k: v for k, v in report.log_events.items() if k not in warned}
        report.check("log_errors", not errors, json.dumps(errors) if errors else "")
        report.check("log_warnings", not warned, json.dumps(warned) if warned else "")
    finally:
        cluster.close()
    if report.ok and not opts.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        report.options["workdir"] = str(root)  # logs and samples kept for a look
    return report


def _analyse(report: LoadReport, samples: list[list[Any]], opts: LoadOptions) -> None:
    report.elapsed_s = max((s[4] + s[5] for s in samples), default=0.0)
    statuses = Counter(str(s[3]) for s in samples if s[3])
    report.statuses = dict(statuses)
    report.transport_errors = sum(1 for s in samples if not s[3])
    total = sum(statuses.values()) + report.transport_errors
    report.requests_per_s = total / report.elapsed_s if report.elapsed_s else 0.0
    report.accepted_per_s = statuses["200"] / report.elapsed_s if report.elapsed_s else 0.0
    report.latency_ms = {
        "all": _percentiles([s[5] for s in samples if s[3]]),
        "200": _percentiles([s[5] for s in samples if s[3] == 200]),
        "429": _percentiles([s[5] for s in samples if s[3] == 429]),
    }
    odd = Counter(f"{s[3]}:{s[6]}" for s in samples if s[3] and s[6] and s[3] != 429)
    odd.update(f"429:{s[6]}" for s in samples if s[3] == 429 and s[6] != "rate_limit_exceeded")
    odd.update(f"{s[3]}" for s in samples if s[3] not in (0, 200, 429))
    errors = Counter(s[6] for s in samples if not s[3])
    report.check("transport", not errors, json.dumps(dict(errors)) if errors else "")
    report.check("statuses", not odd, json.dumps(dict(odd)) if odd else "")
    answered = Counter(int((s[4] + s[5]) // 5) for s in samples)
    full = [answered[w] for w in range(int(report.elapsed_s // 5))]  # whole windows only
    report.per_5s_min_max = (min(full, default=0), max(full, default=0))
    cpu = sum(report.gateway_cpu_s)
    report.gateway_cpu_ms_per_request = 1000 * cpu / total if total else 0.0
    _check_limits(report, samples, opts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--keys", type=int, default=20, help="API keys with an rpm limit")
    parser.add_argument("--rpm", type=int, default=60, help="their requests per minute")
    parser.add_argument("--unlimited-keys", type=int, default=4, help="API keys without")
    parser.add_argument("--log-level", default="warning", help="the gateways' log level")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--keep", action="store_true", help="keep logs and samples")
    parser.add_argument("--role", choices=["run", "upstream", "client"], default="run")
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "upstream":
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(_serve_upstream(args.port))
        return 0
    if args.role == "client":
        spec = json.loads(args.spec.read_text())
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            samples = runner.run(_run_clients(spec))
        args.out.write_bytes(orjson.dumps(samples))
        return 0
    opts = LoadOptions(
        duration=args.duration,
        clients=args.clients,
        keys=args.keys,
        rpm=args.rpm,
        unlimited_keys=args.unlimited_keys,
        log_level=args.log_level,
        keep=args.keep,
    )
    report = run_load(opts)
    print(json.dumps(asdict(report), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
