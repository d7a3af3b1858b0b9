"""Would the packaged sentence-embedding model make a better router? Quality and latency.

Embeds every RouteLLM prompt with all-MiniLM-L6-v2 (onnx-int8, the packaged default;
prompts cut to the model's 256-token window), fits numpy-only ridge-regularised logistic
regressions on the *train* split (label: weak wrong and strong right; and, like the
feature scorer, a ridge on strong - weak), picks the ridge strength by 5-fold
out-of-fold APGR inside train, then reports APGR, CPT(50%), CPT(80%) on the held-out
*test* split beside the packaged feature scorer. Also the decision latency of one
2,000-character prompt (tokenise + encode + dot product).

Usage: .venv/bin/python bench/router_embedding.py [--data CSV] [--cache DIR] [--threads N]
Embeddings are cached in --cache (default /tmp/airlock-router-embedding) as .npy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from airlock.engine.embeddings import load_default_embedding_model
from airlock.routing.evaluation import (
    apgr,
    cpt,
    load_routing_csv,
    router_curve,
    split_rows,
)
from airlock.routing.scorer import ComplexityScorer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/routellm/train.csv"
FloatArray = npt.NDArray[np.float64]


def _embed_all(prompts: list[str], cache: Path, threads: int | None) -> FloatArray:
    key = hashlib.sha256("\x00".join(prompts).encode()).hexdigest()[:16]
    path = cache / f"minilm-{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float64)
    model = load_default_embedding_model(threads=threads)
    limit = model.max_input_tokens - 2  # room for [CLS] and [SEP]
    ids = [model.tokenize(p)[:limit] or [100] for p in prompts]  # 100: [UNK] for empty text
    out = np.empty((len(prompts), model.dimensions), dtype=np.float32)
    start = time.perf_counter()
    for i in range(0, len(ids), 32):
        out[i : i + 32] = model.embed(ids[i : i + 32]).vectors
        if i % 1024 == 0:
            print(f"  embedded {i}/{len(ids)} in {time.perf_counter() - start:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out.astype(np.float64)


def _logistic(x: FloatArray, y: FloatArray, l2: float) -> FloatArray:
    """Ridge-penalised logistic regression by Newton's method; returns [bias, *weights]."""
    xb = np.hstack([np.ones((x.shape[0], 1)), x])
    beta = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(xb @ beta)))
        grad = xb.T @ (p - y) + penalty * beta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def _ridge(x: FloatArray, y: FloatArray, l2: float) -> FloatArray:
    xb = np.hstack([np.ones((x.shape[0], 1)), x])
    penalty = np.full(xb.shape[1], l2)
    penalty[0] = 0.0
    return np.asarray(np.linalg.solve(xb.T @ xb + np.diag(penalty), xb.T @ y))


def _predict(beta: FloatArray, x: FloatArray) -> FloatArray:
    return np.asarray(beta[0] + x @ beta[1:])


def _metrics(scores: FloatArray, weak: FloatArray, strong: FloatArray) -> str:
    curve = router_curve(scores, weak, strong)
    return (
        f"APGR {apgr(curve):.3f}  CPT(50%) {cpt(curve, 0.5):6.1%}  CPT(80%) {cpt(curve, 0.8):6.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/airlock-router-embedding"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n", type=int, default=1000, help="latency samples")
    args = parser.parse_args()

    rows = load_routing_csv(args.data)
    train_set = {r.prompt for r in split_rows(rows, "train")}
    prompts = [r.prompt for r in rows]
    emb = _embed_all(prompts, args.cache, args.threads)
    is_train = np.asarray([p in train_set for p in prompts])
    weak = np.asarray([r.weak_correct for r in rows], dtype=np.float64)
    strong = np.asarray([r.strong_correct for r in rows], dtype=np.float64)
    family = np.asarray([r.family for r in rows])
    needs = ((weak == 0) & (strong == 1)).astype(np.float64)
    fold = np.asarray([int(hashlib.sha256(p.encode()).hexdigest()[:8], 16) % 5 for p in prompts])

    fits = {
        "logistic(needs strong)": (_logistic, needs),
        "ridge(strong - weak)": (_ridge, strong - weak),
    }
    best: dict[str, tuple[float, float]] = {}
    for name, (fit, target) in fits.items():
        for l2 in (1.0, 3.0, 10.0, 30.0, 100.0):
            oof = np.zeros(len(rows))
            for k in range(5):
                tr, te = is_train & (fold != k), is_train & (fold == k)
                oof[te] = _predict(fit(emb[tr], target[tr], l2), emb[te])
            value = apgr(router_curve(oof[is_train], weak[is_train], strong[is_train]))
            print(f"out-of-fold on train, {name}, l2={l2:g}: APGR {value:.3f}")
            if name not in best or value > best[name][1]:
                best[name] = (l2, value)

    feature = ComplexityScorer.load()
    test = ~is_train
    print(f"\nheld-out test split ({int(test.sum())} rows)")
    for subset in ("all", "mmlu", "gsm8k"):
        mask = test if subset == "all" else test & (family == subset)
        w, s = weak[mask], strong[mask]
        print(f"== {subset} ({int(mask.sum())} rows)")
        fs = np.asarray([feature.score(p) for p, m in zip(prompts, mask, strict=True) if m])
        print(f"  {'feature scorer (packaged)':<40}{_metrics(fs, w, s)}")
        for name, (fit, target) in fits.items():
            l2 = best[name][0]
            beta = fit(emb[is_train], target[is_train], l2)
            label = f"MiniLM + {name} l2={l2:g}"
            print(f"  {label:<40}{_metrics(_predict(beta, emb[mask]), w, s)}")

    model = load_default_embedding_model(threads=args.threads)
    beta = _logistic(emb[is_train], needs[is_train], best["logistic(needs strong)"][0])
    limit = model.max_input_tokens - 2
    rng = np.random.default_rng(0)
    texts = [(p * (2000 // max(len(p), 1) + 1))[:2000] for p in rng.choice(prompts, args.n)]
    wall, cpu = [], []
    for text in texts[:20]:
        model.embed([model.tokenize(text)[:limit]])
    for text in texts:
        c0, t0 = time.thread_time(), time.perf_counter()
        vec = model.embed([model.tokenize(text)[:limit]]).vectors[0]
        float(beta[0] + vec @ beta[1:])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    for label, xs in (("wall clock", wall), ("thread CPU", cpu)):
        q = np.quantile(np.asarray(xs) * 1e3, [0.5, 0.9, 0.99])
        print(
            f"latency 2,000 chars {label}: p50 {q[0]:.2f} ms  p90 {q[1]:.2f} ms  p99 {q[2]:.2f} ms"
        )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
