"""Baseline for the gateway benchmark: tokens/s calling ``llama_cpp`` directly in-process.

One ``llama_cpp.Llama`` holds the packaged SmolLM2 GGUF (the same file and settings the
embedded engine uses). ``streams`` threads each run one chat completion at the same time;
a ``Llama`` object is not thread-safe, so they take turns on a lock — exactly what an
application embedding llama.cpp would do, and the same one-sequence-at-a-time schedule as
airlock's engine. Throughput is the completion tokens of all streams (exact, from
llama-cpp-python's ``usage``) divided by the wall time of the whole run.

    .venv/bin/python bench/embedded_direct.py --streams 1 8 --max-tokens 128 --json

``measure_direct`` is the function the gateway benchmark calls with its own parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from airlock.engine.llama_engine import EmbeddedEngine
from airlock.engine.model_files import smollm2_gguf
from airlock.engine.settings import EngineSettings
from airlock.engine.types import ChatJob, ChatTurn, Finished, SamplingParams

__all__ = ["DirectResult", "load_direct", "measure_direct", "measure_engine"]

DEFAULT_PROMPT = "Write a short story about a lighthouse keeper and a storm."


@dataclass(frozen=True, slots=True)
class DirectResult:
    streams: int
    completion_tokens: int
    seconds: float
    tokens_per_second: float
    n_threads: int
    max_tokens: int
    temperature: float


def load_direct(
    model_path: Path | None = None, *, n_ctx: int = 2048, n_threads: int | None = None
) -> llama_cpp.Llama:
    """The model as the engine loads it (same thread default as ``EngineSettings``)."""
    threads = EngineSettings(n_threads=n_threads).threads()
    return llama_cpp.Llama(
        model_path=str(model_path or smollm2_gguf()),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )


def measure_direct(
    *,
    streams: int,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int = 128,
    temperature: float = 0.0,
    logit_bias: Mapping[int, float] | None = None,
    llm: llama_cpp.Llama | None = None,
    n_threads: int | None = None,
) -> DirectResult:
    """Aggregate completion tokens/s of ``streams`` concurrent chat completions."""
    if streams < 1:
        raise ValueError("streams must be >= 1")
    model = llm or load_direct(n_threads=n_threads)
    lock = threading.Lock()
    bias = {int(k): float(v) for k, v in (logit_bias or {}).items()} or None

    def one(i: int) -> int:
        with lock:
            response: Any = model.create_chat_completion(
                messages=[{"role": "user", "content": prompt}],
                max_tokens=max_tokens,
                temperature=temperature,
                seed=i,
                logit_bias=bias,
            )
        return int(response["usage"]["completion_tokens"])

    # Warm-up outside the measurement (first decode allocates buffers).
    with lock:
        model.create_completion("Hello", max_tokens=2, temperature=0.0)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=streams) as pool:
        tokens = sum(pool.map(one, range(streams)))
    seconds = time.perf_counter() - start
    return DirectResult(
        streams=streams,
        completion_tokens=tokens,
        seconds=round(seconds, 3),
        tokens_per_second=round(tokens / seconds, 2),
        n_threads=int(model.n_threads),
        max_tokens=max_tokens,
        temperature=temperature,
    )


def measure_engine(
    *,
    streams: int,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int = 128,
    temperature: float = 0.0,
    logit_bias: Mapping[int, float] | None = None,
    n_threads: int | None = None,
) -> DirectResult:
    """The same measurement through airlock's ``EmbeddedEngine`` (no HTTP): engine overhead."""
    settings = EngineSettings(n_ctx=2048, n_threads=n_threads)

    async def run() -> DirectResult:
        engine = EmbeddedEngine(smollm2_gguf(), settings)
        await engine.start()
        try:

            async def one(i: int) -> int:
                sampling = SamplingParams(
                    max_tokens=max_tokens, temperature=temperature, seed=i, logit_bias=logit_bias
                )
                job = ChatJob((ChatTurn("user", prompt),), sampling)
                tokens = 0
                async for event in engine.stream_chat(job):
                    if isinstance(event, Finished):
                        tokens = event.completion_tokens
                return tokens

            await one(0)  # warm-up
            start = time.perf_counter()
            tokens = sum(await asyncio.gather(*(one(i) for i in range(streams))))
            seconds = time.perf_counter() - start
        finally:
            await engine.aclose()
        return DirectResult(
            streams=streams,
            completion_tokens=tokens,
            seconds=round(seconds, 3),
            tokens_per_second=round(tokens / seconds, 2),
            n_threads=settings.threads(),
            max_tokens=max_tokens,
            temperature=temperature,
        )

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--ignore-eos", action="store_true", help="bias EOS away: exact lengths")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    parser.add_argument(
        "--engine", action="store_true", help="also measure airlock's EmbeddedEngine in-process"
    )
    args = parser.parse_args(argv)
    llm = load_direct(n_threads=args.n_threads)
    bias = {llm.token_eos(): -100.0} if args.ignore_eos else None
    for streams in args.streams:
        result = measure_direct(
            streams=streams,
            prompt=args.prompt,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            logit_bias=bias,
            llm=llm,
        )
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print(_line("direct llama_cpp", result))
        if args.engine:
            engine_result = measure_engine(
                streams=streams,
                prompt=args.prompt,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                logit_bias=bias,
                n_threads=args.n_threads,
            )
            print(
                json.dumps(asdict(engine_result))
                if args.json
                else _line("airlock engine", engine_result)
            )


def _line(label: str, result: DirectResult) -> str:
    return (
        f"{label:<17} streams={result.streams:<3} tokens={result.completion_tokens:<6}"
        f" {result.seconds:>8.2f}s  {result.tokens_per_second:>8.2f} tok/s"
        f"  (n_threads={result.n_threads})"
    )


if __name__ == "__main__":
    main()
