"""Behaviour of the packaged all-MiniLM-L6-v2 embedding model through its public API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from airlock.engine.embeddings import (
    DEFAULT_EMBEDDING_BACKEND,
    SentenceEmbeddingModel,
    load_default_embedding_model,
)

TEXTS = [
    "A man is eating food.",
    "The patient was prescribed 20 mg of atorvastatin daily.",
    "def f(x):\n    return x * 2",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "🚀🔥 launch day!!!",
    "   ",
    "a",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
]

# (anchor, paraphrase, unrelated)
TRIPLES = [
    ("How do I reset my password?", "I forgot my password, how can I change it?", "Bake at 200 C."),
    ("The cat sat on the mat.", "A kitten is resting on a rug.", "Interest rates rose again."),
    ("The stock market crashed.", "Shares fell sharply on Wall Street.", "My dog likes bones."),
    ("He is playing the guitar.", "A man plays an acoustic guitar.", "The train was delayed."),
]

# Published in the sentence-transformers documentation ("Semantic Search" example with
# all-MiniLM-L6-v2): cosine of the query with each corpus sentence, rounded to 4 places.
# An external oracle for the float forward pass, tokenizer and pooling together.
SBERT_QUERY = "A man is eating pasta."
SBERT_SCORES = {
    "A man is eating food.": 0.7035,
    "A man is eating a piece of bread.": 0.5272,
    "A man is riding a horse.": 0.1889,
    "A man is riding a white horse on an enclosed ground.": 0.1047,
    "A cheetah is running behind its prey.": 0.0980,
}


def test_model_metadata(model: SentenceEmbeddingModel) -> None:
    assert model.model_id == "all-minilm-l6-v2"
    assert model.dimensions == 384
    assert model.max_input_tokens == 256
    assert model.supports_dimensions is False
    assert model.backend == DEFAULT_EMBEDDING_BACKEND


def test_vectors_are_unit_length_float32_of_model_dimensions(
    any_model: SentenceEmbeddingModel,
) -> None:
    result = any_model.embed(TEXTS)
    assert result.vectors.shape == (len(TEXTS), 384)
    assert result.vectors.dtype == np.float32
    assert np.all(np.isfinite(result.vectors))
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)


def test_embedding_is_deterministic(any_model: SentenceEmbeddingModel) -> None:
    first = any_model.embed(TEXTS).vectors
    second = any_model.embed(TEXTS).vectors
    np.testing.assert_array_equal(first, second)


def test_distinct_texts_get_distinct_vectors(model: SentenceEmbeddingModel) -> None:
    vectors = model.embed(TEXTS).vectors
    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(len(TEXTS), dtype=bool)]
    assert off_diagonal.max() < 0.95


def test_paraphrases_score_higher_than_unrelated(any_model: SentenceEmbeddingModel) -> None:
    vectors = any_model.embed([s for triple in TRIPLES for s in triple]).vectors
    for anchor, paraphrase, unrelated in vectors.reshape(len(TRIPLES), 3, -1):
        assert anchor @ paraphrase > anchor @ unrelated + 0.3


def test_reference_reproduces_published_sentence_transformers_scores(
    reference: SentenceEmbeddingModel,
) -> None:
    vectors = reference.embed([SBERT_QUERY, *SBERT_SCORES]).vectors
    np.testing.assert_allclose(vectors[1:] @ vectors[0], list(SBERT_SCORES.values()), atol=1e-4)


def test_default_backend_stays_close_to_float_reference(
    model: SentenceEmbeddingModel, reference: SentenceEmbeddingModel
) -> None:
    ours = model.embed([*TEXTS, SBERT_QUERY, *SBERT_SCORES]).vectors
    ref = reference.embed([*TEXTS, SBERT_QUERY, *SBERT_SCORES]).vectors
    cosines = np.sum(ours * ref, axis=1)
    assert cosines.min() > 0.99
    assert cosines.mean() > 0.998
    # The ranking of the published example is preserved.
    scores = ours[len(TEXTS) + 1 :] @ ours[len(TEXTS)]
    assert list(np.argsort(-scores)) == list(range(len(SBERT_SCORES)))


def test_batch_equals_one_by_one(any_model: SentenceEmbeddingModel) -> None:
    batched = any_model.embed(TEXTS).vectors
    single = np.stack([any_model.embed([text]).vectors[0] for text in TEXTS])
    np.testing.assert_allclose(batched, single, atol=2e-5)


def test_many_inputs_split_into_batches_keep_input_order(
    any_model: SentenceEmbeddingModel,
) -> None:
    # Small batch limits force length sorting and several batches.
    small_batches = SentenceEmbeddingModel(
        model_id=any_model.model_id,
        tokenizer=any_model._tokenizer,
        encoder=any_model._encoder,
        dimensions=any_model.dimensions,
        max_input_tokens=any_model.max_input_tokens,
        max_batch_size=3,
        max_batch_tokens=64,
    )
    texts = [f"{TEXTS[i % len(TEXTS)]} number {i}" for i in range(23)]
    split = small_batches.embed(texts)
    whole = any_model.embed(texts)
    np.testing.assert_allclose(split.vectors, whole.vectors, atol=2e-5)
    assert split.token_counts == whole.token_counts


def test_token_counts_are_real_and_include_the_special_tokens(
    model: SentenceEmbeddingModel,
) -> None:
    result = model.embed(["hello world", "hello", "   "])
    # [CLS] hello world [SEP] / [CLS] hello [SEP] / [CLS] [SEP]
    assert result.token_counts == (4, 3, 2)
    assert result.prompt_tokens == 9
    long_text = " ".join(["word"] * 100)
    assert model.embed([long_text]).prompt_tokens == len(model.tokenize(long_text)) + 2


def test_token_id_input_matches_text_input(any_model: SentenceEmbeddingModel) -> None:
    ids = [any_model.tokenize(text) for text in TEXTS[:4]]
    from_ids = any_model.embed(ids)
    from_text = any_model.embed(TEXTS[:4])
    np.testing.assert_allclose(from_ids.vectors, from_text.vectors, atol=1e-6)
    assert from_ids.token_counts == from_text.token_counts


def test_token_ids_as_numpy_array_are_accepted(model: SentenceEmbeddingModel) -> None:
    ids = model.tokenize(TEXTS[0])
    # Not in the static type, but accepted at run time (numpy int arrays are sequences of ints).
    as_array = model.embed([np.asarray(ids, dtype=np.int64)]).vectors  # type: ignore[arg-type]
    np.testing.assert_array_equal(as_array, model.embed([ids]).vectors)


def test_inputs_up_to_the_limit_are_accepted(model: SentenceEmbeddingModel) -> None:
    ids = [1037] * (model.max_input_tokens - 2)  # plus [CLS] and [SEP]: exactly the limit
    assert model.embed([ids]).prompt_tokens == model.max_input_tokens


def test_concurrent_calls_from_threads_agree_with_serial(model: SentenceEmbeddingModel) -> None:
    batches = [TEXTS[i:] + TEXTS[:i] for i in range(6)]
    serial = [model.embed(batch).vectors for batch in batches]
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(lambda b: model.embed(b).vectors, batches))
    for got, want in zip(concurrent, serial, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_onnx_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threads"):
        load_default_embedding_model(threads=0)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend"):
        load_default_embedding_model(backend="torch")  # type: ignore[arg-type]
