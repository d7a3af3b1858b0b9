"""Bad inputs are rejected with OpenAI-style 400s that name the input, never its content."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from airlock.engine.embeddings import SentenceEmbeddingModel
from airlock.errors import BadRequestError

SECRET = "Zyxquilibrant-4471"  # must never appear in an error message


def _reject(model: SentenceEmbeddingModel, inputs: Sequence[object]) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        model.embed(inputs)  # type: ignore[arg-type]
    error = info.value
    assert error.status_code == 400
    assert error.param == "input"
    assert SECRET.lower() not in str(error).lower()
    return error


def _over_long_text(model: SentenceEmbeddingModel) -> str:
    text = SECRET + " " + " ".join(["word"] * model.max_input_tokens)
    assert len(model.tokenize(text)) + 2 > model.max_input_tokens
    return text


def test_over_long_text_is_rejected_not_truncated(model: SentenceEmbeddingModel) -> None:
    error = _reject(model, [SECRET, _over_long_text(model)])
    assert error.code == "context_length_exceeded"
    assert "input[1]" in error.message
    assert str(model.max_input_tokens) in error.message


def test_one_token_over_the_limit_is_rejected(model: SentenceEmbeddingModel) -> None:
    ids = [1037] * (model.max_input_tokens - 1)  # 257 with [CLS] and [SEP]
    error = _reject(model, [[1037], ids])
    assert error.code == "context_length_exceeded"
    assert "input[1]" in error.message
    assert "257" in error.message


def test_empty_string_is_rejected(model: SentenceEmbeddingModel) -> None:
    error = _reject(model, [SECRET, ""])
    assert "input[1]" in error.message
    assert "empty" in error.message


def test_empty_batch_is_rejected(model: SentenceEmbeddingModel) -> None:
    assert "empty" in _reject(model, []).message


def test_empty_token_array_is_rejected(model: SentenceEmbeddingModel) -> None:
    error = _reject(model, [[1037], []])
    assert "input[1]" in error.message


@pytest.mark.parametrize(
    ("token", "position"),
    [(-1, 2), (30522, 1), (10**12, 0), (True, 1), (1.0, 2), ("1037", 0), (None, 1)],
)
def test_bad_token_ids_are_rejected_by_position(
    model: SentenceEmbeddingModel, token: object, position: int
) -> None:
    ids: list[object] = [1037, 2158, 2003]
    ids[position] = token
    error = _reject(model, [[1037], ids])
    assert f"input[1][{position}]" in error.message


def test_out_of_range_id_message_gives_the_valid_range(model: SentenceEmbeddingModel) -> None:
    error = _reject(model, [[model._tokenizer.vocab_size]])
    assert f"0 to {model._tokenizer.vocab_size - 1}" in error.message


def test_highest_vocabulary_id_is_accepted(model: SentenceEmbeddingModel) -> None:
    assert model.embed([[0, model._tokenizer.vocab_size - 1]]).prompt_tokens == 4


@pytest.mark.parametrize("item", [None, 5, 2.5, {"text": "x"}, b"bytes"])
def test_items_that_are_neither_text_nor_token_ids_are_rejected(
    model: SentenceEmbeddingModel, item: object
) -> None:
    error = _reject(model, ["fine", item])
    assert "input[1]" in error.message


def test_too_many_inputs_are_rejected(model: SentenceEmbeddingModel) -> None:
    error = _reject(model, ["x"] * (model.max_inputs + 1))
    assert str(model.max_inputs) in error.message


def test_nothing_is_computed_when_any_input_is_bad(model: SentenceEmbeddingModel) -> None:
    # Validation covers the whole batch before the encoder runs: the error names the
    # bad input even when it comes after many good ones.
    error = _reject(model, ["good"] * 50 + [""])
    assert "input[50]" in error.message


def test_a_bare_string_is_a_programming_error(model: SentenceEmbeddingModel) -> None:
    with pytest.raises(TypeError):
        model.embed("not a list")
