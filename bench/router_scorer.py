"""Decision latency of the complexity scorer (target: p99 < 1 ms at 2,000 characters).

Usage: .venv/bin/python bench/router_scorer.py [--data CSV] [--n 5000] [--free-form]
Prompts are real RouteLLM prompts repeated/cut to exactly 2,000 characters (or a
synthetic mix when no data file is given). Prints load time and p50/p90/p99/max of
`score` and `explain`. `--free-form` keeps only prompts without lettered options: the
worst case, since only free-form prompts also run the prior rules.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import time
from pathlib import Path

from airlock.routing.scorer import ComplexityScorer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/routellm/train.csv"


def _prompts(data: Path | None, n: int, length: int, free_form: bool) -> list[str]:
    if data is not None and data.exists():
        with data.open(encoding="utf-8", newline="") as handle:
            base = [row["prompt"] for row in csv.DictReader(handle)]
        if free_form:
            base = [p for p in base if "\nA." not in p]
    else:
        base = [
            "Janet has 16 eggs; she eats 3 and bakes with 4. How many dollars at $2 each?",
            "Which of the following is NOT a tort?\nA. Battery\nB. Libel\nC. Theft\nD. None",
            "def f(x):\n    return x ** 2  # explain the complexity of this code step by step",
        ]
    rng = random.Random(0)
    out = []
    for _ in range(n):
        text = rng.choice(base)
        out.append((text * (length // max(len(text), 1) + 1))[:length])
    return out


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6  # noqa: E731
    return (
        f"p50 {pick(0.50):7.1f} us  p90 {pick(0.90):7.1f} us  p99 {pick(0.99):7.1f} us  "
        f"max {ordered[-1] * 1e6:8.1f} us  mean {statistics.fmean(ordered) * 1e6:7.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--free-form", action="store_true", help="free-form prompts only")
    args = parser.parse_args()

    start = time.perf_counter()
    scorer = ComplexityScorer.load()
    print(f"load packaged weights: {(time.perf_counter() - start) * 1e3:.1f} ms")
    prompts = _prompts(args.data, args.n, args.length, args.free_form)
    for text in prompts[:200]:  # warm-up
        scorer.score(text)
    for name, fn in (("score", scorer.score), ("explain", scorer.explain)):
        wall, cpu = [], []
        for text in prompts:
            c0, t0 = time.thread_time(), time.perf_counter()
            fn(text)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        print(f"{name:8s} {args.length}-char prompts, n={len(prompts)}")
        print(f"  wall clock  {_percentiles(wall)}")
        # CPU time of this thread: what the scorer costs when other processes compete
        # for the two cores (wall-clock p99 then mostly measures the OS scheduler).
        print(f"  thread CPU  {_percentiles(cpu)}")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
