"""What airlock adds as a proxy: requests/s and latency through it vs straight to a fast upstream.

    .venv/bin/python bench/proxy_overhead.py [--concurrency 1 16 64] [--rounds 3]
        [--seconds 3] [--pin] [--json] [--quick]

Three processes: ``bench/fast_upstream.py`` (raw asyncio, a fixed chat completion or a
short SSE stream), the real ``airlock serve`` with a YAML config whose only model is an
``openai-compatible`` deployment pointing at that upstream, and this process, the load
generator: ``concurrency`` closed-loop workers, each on its own keep-alive connection,
written on raw asyncio streams (uvloop) so that the client costs far less CPU per request
than either server.

For each concurrency and mode (``json``: non-streaming, latency = whole response;
``stream``: ``stream: true`` with ``stream_options.include_usage``, latency = time to the
first body byte, also reported to the last byte) the load generator runs ``direct`` (to
the upstream) and ``airlock`` (to the gateway) back to back, alternating which goes
first, ``rounds`` times. Each run is ``--warmup`` seconds unrecorded then ``--seconds``
recorded. The table shows medians over rounds; ratio and added latency are medians of
the per-round pairs, so slow phases of a shared machine hit both sides of a pair.

CPU: with ``--pin``, airlock gets CPU 0 and the upstream and load generator share CPU 1
(so airlock's numbers are those of a one-core gateway); without it the kernel places all
three. CPU time per request of each process (from /proc) is printed either way: it is
the least noise-sensitive measure of airlock's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from _gateway import BENCH_DIR, MASTER_KEY, ServerProcess, free_port, median, start_gateway
from _gateway import start_server as start_process
from fast_upstream import loop_factory

__all__ = ["LoadResult", "Target", "run_load"]

MODES = ("json", "stream")
PROMPT = "Say hello in one short sentence."


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    host: str
    port: int
    model: str
    api_key: str

    def request(self, stream: bool) -> bytes:
        body: dict[str, object] = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 16,
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        data = json.dumps(body).encode()
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"authorization: Bearer {self.api_key}\r\ncontent-type: application/json\r\n"
            f"accept: {'text/event-stream' if stream else 'application/json'}\r\n"
            f"content-length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data


@dataclass(slots=True)
class LoadResult:
    target: str
    mode: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    last_p50_ms: float  # stream: time to the last byte; json: same as p50_ms
    last_p99_ms: float
    server_cpu_ms_per_req: float
    client_cpu_ms_per_req: float
    first_error: str | None = None
    extra_cpu_ms_per_req: dict[str, float] = field(default_factory=dict)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, float, bytes]:
    """Status, time of the first body byte, body (chunked transfer encoding decoded)."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head[9:12])
    if b"transfer-encoding: chunked" in head:
        parts: list[bytes] = []
        first = 0.0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, first, b"".join(parts)
            data = await reader.readexactly(size + 2)
            if not first:
                first = time.perf_counter()
            parts.append(data[:-2])
    start = head.find(b"content-length:") + len(b"content-length:")
    length = int(head[start : head.find(b"\r\n", start)])
    body = await reader.readexactly(length)
    return status, time.perf_counter(), body


def _check(status: int, body: bytes, stream: bool) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    if stream:
        if not body.endswith(b"data: [DONE]\n\n") or b'"usage"' not in body:
            return f"incomplete stream: {body[-200:]!r}"
    elif b'"choices"' not in body:
        return f"unexpected body: {body[:200]!r}"
    return None


@dataclass(slots=True)
class _Samples:
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None


async def _worker(
    target: Target, stream: bool, window: tuple[float, float], samples: _Samples
) -> None:
    """One connection, one request at a time, until the window closes."""
    begin, end = window
    payload = target.request(stream)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            writer.write(payload)
            status, first, body = await _read_response(reader)
            t1 = time.perf_counter()
            if not begin <= t1 <= end:
                continue
            problem = _check(status, body, stream)
            if problem is not None:
                samples.errors += 1
                samples.first_error = samples.first_error or problem
                continue
            samples.first.append(first - t0)
            samples.last.append(t1 - t0)
    finally:
        writer.close()


async def run_load(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    seconds: float,
    warmup: float,
    server: ServerProcess,
    others: Sequence[ServerProcess] = (),
) -> LoadResult:
    """Closed-loop load for ``warmup + seconds``; statistics over the last ``seconds``."""
    begin = time.perf_counter() + warmup
    end = begin + seconds
    samples = _Samples()
    cpu: dict[str, float] = {}

    async def meter() -> None:
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        cpu["server"] = server.cpu_seconds()
        cpu["client"] = time.process_time()
        for other in others:
            cpu[other.name] = other.cpu_seconds()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        cpu["server"] = server.cpu_seconds() - cpu["server"]
        cpu["client"] = time.process_time() - cpu["client"]
        for other in others:
            cpu[other.name] = other.cpu_seconds() - cpu[other.name]

    await asyncio.gather(
        meter(), *(_worker(target, stream, (begin, end), samples) for _ in range(concurrency))
    )
    n = len(samples.last)
    first, last = sorted(samples.first), sorted(samples.last)

    def per_req(seconds_used: float) -> float:
        return round(1000 * seconds_used / n, 4) if n else float("nan")

    return LoadResult(
        target=target.name,
        mode="stream" if stream else "json",
        concurrency=concurrency,
        requests=n,
        errors=samples.errors,
        seconds=seconds,
        rps=round(n / seconds, 1),
        p50_ms=round(1000 * _percentile(first, 0.50), 3),
        p99_ms=round(1000 * _percentile(first, 0.99), 3),
        last_p50_ms=round(1000 * _percentile(last, 0.50), 3),
        last_p99_ms=round(1000 * _percentile(last, 0.99), 3),
        server_cpu_ms_per_req=per_req(cpu["server"]),
        client_cpu_ms_per_req=per_req(cpu["client"]),
        first_error=samples.first_error,
        extra_cpu_ms_per_req={o.name: per_req(cpu[o.name]) for o in others},
    )


def _pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` (threads started later inherit the mask)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


@dataclass(slots=True)
class _Row:
    concurrency: int
    mode: str
    direct: list[LoadResult] = field(default_factory=list)
    airlock: list[LoadResult] = field(default_factory=list)

    def med(self, side: str, get: Callable[[LoadResult], float]) -> float:
        runs: list[LoadResult] = getattr(self, side)
        return median([get(r) for r in runs])

    def paired(self, get: Callable[[LoadResult, LoadResult], float]) -> float:
        return median([get(d, a) for d, a in zip(self.direct, self.airlock, strict=True)])


def _pair(row: _Row, side: str, lo: str, hi: str) -> str:
    p50 = row.med(side, lambda r: float(getattr(r, lo)))
    p99 = row.med(side, lambda r: float(getattr(r, hi)))
    return f"{p50:.2f}/{p99:.2f}"


def _print_table(rows: list[_Row], *, last_byte: bool) -> None:
    lo, hi = ("last_p50_ms", "last_p99_ms") if last_byte else ("p50_ms", "p99_ms")
    print(
        f"{'conc':>4} {'mode':<6} {'direct rps':>10} {'airlock rps':>11} {'ratio':>6}"
        f"  {'direct p50/p99':>15}  {'airlock p50/p99':>15}  {'added p50/p99 ms':>16}"
        f"  {'airlock CPU ms/req':>18}"
    )
    for row in rows:
        if last_byte and row.mode != "stream":
            continue

        added50 = row.paired(lambda d, a: getattr(a, lo) - getattr(d, lo))
        added99 = row.paired(lambda d, a: getattr(a, hi) - getattr(d, hi))
        print(
            f"{row.concurrency:>4} {row.mode:<6}"
            f" {row.med('direct', lambda r: r.rps):>10.0f}"
            f" {row.med('airlock', lambda r: r.rps):>11.0f}"
            f" {row.paired(lambda d, a: a.rps / d.rps):>6.3f}"
            f"  {_pair(row, 'direct', lo, hi):>15}  {_pair(row, 'airlock', lo, hi):>15}"
            f"  {f'{added50:.2f}/{added99:.2f}':>16}"
            f"  {row.med('airlock', lambda r: r.server_cpu_ms_per_req):>18.3f}"
        )


def _print_cpu(rows: list[_Row]) -> None:
    print("\nCPU time per request (ms, medians over rounds):")
    print(f"{'conc':>4} {'mode':<6} {'upstream':>9} {'client(d)':>9} {'airlock':>8}", end="")
    print(f" {'upstream(a)':>11} {'client(a)':>9}")
    for row in rows:
        up = row.med("direct", lambda r: r.server_cpu_ms_per_req)
        cd = row.med("direct", lambda r: r.client_cpu_ms_per_req)
        gw = row.med("airlock", lambda r: r.server_cpu_ms_per_req)
        ua = row.med("airlock", lambda r: r.extra_cpu_ms_per_req["upstream"])
        ca = row.med("airlock", lambda r: r.client_cpu_ms_per_req)
        print(
            f"{row.concurrency:>4} {row.mode:<6} {up:>9.3f} {cd:>9.3f} {gw:>8.3f}"
            f" {ua:>11.3f} {ca:>9.3f}"
        )


def _config(path: Path, upstream_port: int, key_env: str) -> None:
    config = {
        "models": [
            {
                "name": "fast",
                "tier": "self-hosted",
                "capabilities": ["chat"],
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                "deployments": [
                    {
                        "provider": "openai-compatible",
                        "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                        "api_key_env": key_env,
                        "upstream_model": "fast-upstream",
                        "max_concurrency": 128,
                    }
                ],
            }
        ]
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


async def _measure(args: argparse.Namespace, workdir: Path) -> list[_Row]:
    key_env = "FAST_UPSTREAM_KEY"
    upstream_key = "sk-upstream-" + secrets.token_hex(8)
    env = {**os.environ, key_env: upstream_key}
    port = free_port()
    script = str(BENCH_DIR / "fast_upstream.py")
    upstream = start_process(
        "upstream",
        [sys.executable, script, "--port", str(port), "--api-key-env", key_env],
        port=port,
        workdir=workdir,
        health_path="/health",
        env=env,
    )
    gateway: ServerProcess | None = None
    try:
        config = workdir / "airlock.yaml"
        _config(config, port, key_env)
        gateway = start_gateway(workdir, config=config, env={key_env: upstream_key})
        if args.pin:
            _pin(gateway.pid, {0})
            _pin(upstream.pid, {1})
            _pin(os.getpid(), {1})
        direct = Target("direct", "127.0.0.1", upstream.port, "fast-upstream", upstream_key)
        through = Target("airlock", "127.0.0.1", gateway.port, "fast", MASTER_KEY)
        rows: list[_Row] = []
        for concurrency in args.concurrency:
            for mode in MODES:
                row = _Row(concurrency, mode)
                rows.append(row)
                for r in range(args.rounds):
                    order = [direct, through] if r % 2 == 0 else [through, direct]
                    for target in order:
                        server = upstream if target is direct else gateway
                        others = (upstream,) if target is through else ()
                        result = await run_load(
                            target,
                            stream=mode == "stream",
                            concurrency=concurrency,
                            seconds=args.seconds,
                            warmup=args.warmup,
                            server=server,
                            others=others,
                        )
                        if result.errors:
                            print(
                                f"warning: {result.errors} failed requests to {target.name}"
                                f" ({result.first_error})",
                                file=sys.stderr,
                            )
                        (row.direct if target is direct else row.airlock).append(result)
                        if args.json:
                            print(json.dumps(asdict(result)), flush=True)
                        else:
                            print(
                                f"  c={concurrency:<3} {mode:<6} round {r + 1} {target.name:<7}"
                                f" {result.rps:>8.1f} rps  p50 {result.p50_ms:.2f} ms"
                                f"  p99 {result.p99_ms:.2f} ms",
                                flush=True,
                            )
        return rows
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="recorded time per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unrecorded time per run")
    parser.add_argument("--pin", action="store_true", help="airlock on CPU 0, the rest on CPU 1")
    parser.add_argument("--json", action="store_true", help="one JSON line per run")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 1.0, 0.3
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs at least 2 CPUs")
    print(
        f"proxy overhead: {os.cpu_count()} CPUs, pinned={args.pin}, rounds={args.rounds},"
        f" {args.seconds:g} s per run (+{args.warmup:g} s warm-up)",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="airlock-proxy-bench-") as tmp,
        asyncio.Runner(loop_factory=loop_factory(True)) as runner,
    ):
        rows = runner.run(_measure(args, Path(tmp)))
    print("\nLatency: json = whole response; stream = first body byte (medians over rounds)")
    _print_table(rows, last_byte=False)
    print("\nStreaming, time to the last byte:")
    _print_table(rows, last_byte=True)
    _print_cpu(rows)


if __name__ == "__main__":
    main()
