"""Embedded-model tokens/s through the gateway vs ``llama_cpp`` called directly in-process.

    .venv/bin/python bench/gateway_throughput.py [--streams 1 8] [--max-tokens 128]
        [--rounds 3] [--client openai|httpx] [--json] [--quick]

``direct``: ``bench/embedded_direct.py``'s ``measure_direct`` — one ``llama_cpp.Llama``
in this process holding the packaged SmolLM2 GGUF with the engine's settings (same
file, thread count and context size as ``airlock serve``), ``streams`` threads taking
turns on a lock.

``gateway``: the real ``airlock serve`` (no config: model ``smollm2`` on the embedded
engine) in a subprocess on a free loopback port; ``streams`` concurrent streaming chat
completions from the official ``openai`` client (or plain httpx), usage from the final
``stream_options.include_usage`` chunk.

Both sides: the same prompt, ``max_tokens``, temperature 0, and a -100 logit bias on
every end-of-generation token, so every stream generates exactly ``max_tokens`` tokens
(checked). Throughput = completion tokens of all streams / wall time of the whole batch
(prompt processing included). Rounds alternate which side goes first, so slow phases of
a shared machine hit both; the ratio is the median of the per-round gateway/direct
ratios. Target: the gateway keeps >= 95% of direct single-stream speed.

On a machine shared with other work the generating thread spends much of each run ready
but without a CPU (run-queue wait, from ``/proc/<pid>/task/<tid>/schedstat``). The second
table leaves that wait out of each run's wall time: what the same run would have taken
with a CPU always free, and the figure least disturbed by neighbours. CPU seconds per
1000 tokens (this process, the gateway process) are printed for the same reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import llama_cpp
import openai
import orjson

from _gateway import MASTER_KEY, SchedMonitor, ServerProcess, median, start_gateway
from embedded_direct import DEFAULT_PROMPT, load_direct, measure_direct

__all__ = ["RunResult", "eog_bias", "measure_gateway"]

# ``airlock serve`` without a config runs the engine with an 8K context (providers/builtins.py).
GATEWAY_N_CTX = 8192


@dataclass(frozen=True, slots=True)
class RunResult:
    side: str
    streams: int
    completion_tokens: int
    seconds: float
    tokens_per_second: float
    # CPU seconds per 1000 completion tokens: this process, and the gateway process.
    local_cpu_per_ktok: float
    gateway_cpu_per_ktok: float
    # Run-queue wait of the generating thread (ready, but no CPU free): time lost to other
    # processes on a shared machine. ``contention_free_tps`` leaves it out of the wall time.
    runqueue_wait_s: float = 0.0
    contention_free_tps: float = 0.0
    ttft_p50_ms: float | None = None


def eog_bias(llm: llama_cpp.Llama) -> dict[int, float]:
    """-100 on every end-of-generation token: generation runs to ``max_tokens``."""
    vocab = llm._model.vocab
    return {t: -100.0 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}


async def measure_gateway(
    gateway: ServerProcess,
    *,
    streams: int,
    prompt: str,
    max_tokens: int,
    logit_bias: dict[int, float],
    client: str = "openai",
) -> RunResult:
    """Aggregate tokens/s of ``streams`` concurrent streamed chat completions."""
    bias = {str(k): v for k, v in logit_bias.items()}
    body: dict[str, object] = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.0,
        "logit_bias": bias,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    limits = httpx.Limits(max_connections=streams + 1)
    async with httpx.AsyncClient(
        base_url=gateway.base_url + "/v1",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=httpx.Timeout(600),
        limits=limits,
    ) as http:
        oai = openai.AsyncOpenAI(
            base_url=gateway.base_url + "/v1", api_key=MASTER_KEY, max_retries=0, http_client=http
        )

        async def via_openai(seed: int, tokens: int) -> tuple[int, float]:
            start, first = time.perf_counter(), 0.0
            completion = 0
            stream = await oai.chat.completions.create(
                model="smollm2",
                messages=[{"role": "user", "content": prompt}],
                max_tokens=tokens,
                temperature=0.0,
                seed=seed,
                logit_bias=bias,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if not first and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - start
                if chunk.usage is not None:
                    completion = chunk.usage.completion_tokens
            return completion, first

        async def via_httpx(seed: int, tokens: int) -> tuple[int, float]:
            start, first = time.perf_counter(), 0.0
            completion = 0
            payload = {**body, "max_tokens": tokens, "seed": seed}
            async with http.stream("POST", "/chat/completions", json=payload) as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    if not first and '"content":"' in line and '"content":""' not in line:
                        first = time.perf_counter() - start
                    if '"usage":{' in line:
                        usage = orjson.loads(line[6:]).get("usage") or {}
                        completion = int(usage.get("completion_tokens", 0))
            return completion, first

        one = via_openai if client == "openai" else via_httpx
        # Warm-up exactly like measure_direct's (a 2-token plain completion of "Hello"), so
        # both sides start each run with the same unrelated text in the KV cache.
        warm = await http.post(
            "/completions",
            json={"model": "smollm2", "prompt": "Hello", "max_tokens": 2, "temperature": 0.0},
        )
        warm.raise_for_status()
        cpu0, gw0 = time.process_time(), gateway.cpu_seconds()
        with SchedMonitor(gateway.pid) as sched:
            start = time.perf_counter()
            results = await asyncio.gather(*(one(i, max_tokens) for i in range(streams)))
            seconds = time.perf_counter() - start
        cpu, gw = time.process_time() - cpu0, gateway.cpu_seconds() - gw0
    tokens = sum(n for n, _ in results)
    # The engine's worker thread (the busiest one) generates every token.
    _, wait = max(sched.deltas().values())
    return RunResult(
        side="gateway",
        streams=streams,
        completion_tokens=tokens,
        seconds=round(seconds, 3),
        tokens_per_second=round(tokens / seconds, 2),
        local_cpu_per_ktok=round(1000 * cpu / tokens, 3),
        gateway_cpu_per_ktok=round(1000 * gw / tokens, 3),
        runqueue_wait_s=round(wait, 3),
        contention_free_tps=round(tokens / (seconds - wait), 2),
        ttft_p50_ms=round(1000 * median([f for _, f in results]), 1),
    )


def _direct(
    llm: llama_cpp.Llama,
    gateway: ServerProcess,
    *,
    streams: int,
    prompt: str,
    max_tokens: int,
    logit_bias: dict[int, float],
) -> RunResult:
    cpu0, gw0 = time.process_time(), gateway.cpu_seconds()
    # The window includes measure_direct's 2-token warm-up (about 1% of a run).
    with SchedMonitor(os.getpid()) as sched:
        result = measure_direct(
            streams=streams, prompt=prompt, max_tokens=max_tokens, logit_bias=logit_bias, llm=llm
        )
    cpu, gw = time.process_time() - cpu0, gateway.cpu_seconds() - gw0
    tokens = result.completion_tokens
    # Streams run on pool threads that take turns; the others sleep on the lock, so the
    # sum over threads is the generating thread's wait.
    wait = sum(w for _, w in sched.deltas().values())
    return RunResult(
        side="direct",
        streams=streams,
        completion_tokens=tokens,
        seconds=result.seconds,
        tokens_per_second=result.tokens_per_second,
        local_cpu_per_ktok=round(1000 * cpu / tokens, 3),
        gateway_cpu_per_ktok=round(1000 * gw / tokens, 3),
        runqueue_wait_s=round(wait, 3),
        contention_free_tps=round(tokens / (result.seconds - wait), 2),
    )


def _summary(runs: list[RunResult], streams_list: Sequence[int], max_tokens: int) -> None:
    print(
        f"\n{'streams':>7} {'direct tok/s':>18} {'gateway tok/s':>18} {'gateway/direct':>14}"
        f" {'TTFT p50 ms':>11} {'CPU s/ktok direct':>17} {'gateway':>8} {'client':>7}"
        f" {'CPU direct/gw':>13}"
    )
    for streams in streams_list:
        d = [r for r in runs if r.side == "direct" and r.streams == streams]
        g = [r for r in runs if r.side == "gateway" and r.streams == streams]
        ratios = [b.tokens_per_second / a.tokens_per_second for a, b in zip(d, g, strict=True)]

        def spread(rs: list[RunResult]) -> str:
            tps = [r.tokens_per_second for r in rs]
            return f"{median(tps):.1f} [{min(tps):.1f}-{max(tps):.1f}]"

        ttft = median([r.ttft_p50_ms or 0.0 for r in g])
        cpu_d = median([r.local_cpu_per_ktok for r in d])
        cpu_gw = median([r.gateway_cpu_per_ktok for r in g])
        cpu_client = median([r.local_cpu_per_ktok for r in g])
        print(
            f"{streams:>7} {spread(d):>18} {spread(g):>18} {median(ratios):>14.3f}"
            f" {ttft:>11.0f} {cpu_d:>17.2f} {cpu_gw:>8.2f} {cpu_client:>7.2f}"
            f" {cpu_d / cpu_gw:>13.3f}"
        )
        expected = streams * max_tokens
        short = [r for r in d + g if r.completion_tokens != expected]
        if short:
            print(f"        note: {len(short)} runs generated fewer than {expected} tokens")
    print(
        "\nWithout run-queue wait (time the generating thread was ready but other processes"
        " held the CPUs):"
    )
    print(f"{'streams':>7} {'direct tok/s':>13} {'gateway tok/s':>14} {'gateway/direct':>14}")
    for streams in streams_list:
        d = [r for r in runs if r.side == "direct" and r.streams == streams]
        g = [r for r in runs if r.side == "gateway" and r.streams == streams]
        ratios = [b.contention_free_tps / a.contention_free_tps for a, b in zip(d, g, strict=True)]
        print(
            f"{streams:>7} {median([r.contention_free_tps for r in d]):>13.1f}"
            f" {median([r.contention_free_tps for r in g]):>14.1f} {median(ratios):>14.3f}"
        )
    single = [r for r in runs if r.streams == 1]
    if single:
        d1 = [r.tokens_per_second for r in single if r.side == "direct"]
        g1 = [r.tokens_per_second for r in single if r.side == "gateway"]
        ratio = median([b / a for a, b in zip(d1, g1, strict=True)])
        verdict = "meets" if ratio >= 0.95 else "BELOW"
        print(f"\nsingle stream: gateway keeps {100 * ratio:.1f}% of direct", end="")
        print(f" ({verdict} the 95% target)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--client", choices=["openai", "httpx"], default="openai")
    parser.add_argument("--json", action="store_true", help="one JSON line per run")
    parser.add_argument("--quick", action="store_true", help="1 round, 32 tokens")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.max_tokens = 1, 32
    llm = load_direct(n_ctx=GATEWAY_N_CTX)
    bias = eog_bias(llm)
    print(
        f"gateway throughput: n_threads={llm.n_threads} n_ctx={GATEWAY_N_CTX}"
        f" max_tokens={args.max_tokens} rounds={args.rounds} client={args.client}"
        f" eog tokens biased={sorted(bias)}",
        flush=True,
    )
    runs: list[RunResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="airlock-gw-bench-") as tmp,
        asyncio.Runner() as runner,
    ):
        gateway = start_gateway(Path(tmp))
        try:
            # One full-length run per side, not recorded: the first generations of a fresh
            # model allocate and fault in buffers (measured ~2x slower on this machine).
            _direct(
                llm,
                gateway,
                streams=1,
                prompt=args.prompt,
                max_tokens=args.max_tokens,
                logit_bias=bias,
            )
            runner.run(
                measure_gateway(
                    gateway,
                    streams=1,
                    prompt=args.prompt,
                    max_tokens=args.max_tokens,
                    logit_bias=bias,
                    client=args.client,
                )
            )
            for r in range(args.rounds):
                for i, streams in enumerate(args.streams):
                    # A fresh prompt per round: the engine and llama-cpp-python both reuse a
                    # cached prompt prefix, so each run must start cold on both sides.
                    prompt = f"(Round {r + 1}.) {args.prompt}"
                    sides = ["direct", "gateway"] if (r + i) % 2 == 0 else ["gateway", "direct"]
                    for side in sides:
                        if side == "direct":
                            result = _direct(
                                llm,
                                gateway,
                                streams=streams,
                                prompt=prompt,
                                max_tokens=args.max_tokens,
                                logit_bias=bias,
                            )
                        else:
                            result = runner.run(
                                measure_gateway(
                                    gateway,
                                    streams=streams,
                                    prompt=prompt,
                                    max_tokens=args.max_tokens,
                                    logit_bias=bias,
                                    client=args.client,
                                )
                            )
                        runs.append(result)
                        if args.json:
                            print(json.dumps(asdict(result)), flush=True)
                        else:
                            print(
                                f"  round {r + 1} streams={streams:<2} {side:<7}"
                                f" {result.completion_tokens:>5} tokens {result.seconds:>7.2f} s"
                                f" {result.tokens_per_second:>7.1f} tok/s"
                                f"  (run-queue wait {result.runqueue_wait_s:.2f} s)",
                                flush=True,
                            )
        finally:
            gateway.stop()
    _summary(runs, args.streams, args.max_tokens)


if __name__ == "__main__":
    main()
