"""Validation of embedding inputs into framed token-id sequences.

Every error names the input by index and describes only metadata (lengths, limits,
positions): never the text or the token ids themselves (invariant 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from airlock.errors import BadRequestError

from ._tokenizer import WordPieceTokenizer

__all__ = ["EmbeddingInput", "prepare_inputs"]

#: A batch of texts, or of token-id arrays in the model's own vocabulary.
EmbeddingInput = Sequence[str] | Sequence[Sequence[int]]

_PARAM = "input"


def prepare_inputs(
    inputs: EmbeddingInput,
    tokenizer: WordPieceTokenizer,
    *,
    max_inputs: int,
    max_input_tokens: int,
) -> list[list[int]]:
    """Token ids of each input, framed ``[CLS] … [SEP]``, all checked against the limits.

    Raises :class:`BadRequestError` for an empty batch, too many inputs, an empty
    string or token array, an item that is neither a string nor token ids, an id
    outside the vocabulary, or an input longer than ``max_input_tokens``
    (code ``context_length_exceeded``; inputs are never truncated).
    """
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
        # A programming error in the caller, not a client error: the endpoint
        # normalises OpenAI's single-string / single-array forms to a list of one.
        raise TypeError("inputs must be a sequence of strings or of token-id sequences")
    if not inputs:
        raise BadRequestError("'input' must not be empty.", param=_PARAM)
    if len(inputs) > max_inputs:
        raise BadRequestError(
            f"'input' holds {len(inputs)} items; at most {max_inputs} are allowed per request.",
            param=_PARAM,
        )

    framed: list[list[int] | None] = [None] * len(inputs)
    text_indices: list[int] = []
    texts: list[str] = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            if not item:
                raise BadRequestError(
                    f"input[{index}] is an empty string; every input must contain text.",
                    param=_PARAM,
                )
            text_indices.append(index)
            texts.append(item)
        else:
            framed[index] = tokenizer.frame(_token_ids(item, index, tokenizer.vocab_size))

    if texts:
        for index, ids in zip(text_indices, tokenizer.encode(texts), strict=True):
            framed[index] = ids

    result = [ids for ids in framed if ids is not None]
    for index, ids in enumerate(result):
        if len(ids) > max_input_tokens:
            raise BadRequestError(
                f"input[{index}] is {len(ids)} tokens long, but this model's maximum context "
                f"length is {max_input_tokens} tokens (counting the 2 special tokens added to "
                "every input). Inputs are not truncated; please shorten it.",
                param=_PARAM,
                code="context_length_exceeded",
            )
    return result


def _token_ids(item: object, index: int, vocab_size: int) -> list[int]:
    if isinstance(item, bytes | bytearray) or not isinstance(item, Sequence | np.ndarray):
        raise BadRequestError(
            f"input[{index}] must be a string or an array of integer token ids.", param=_PARAM
        )
    ids: list[int] = []
    for position, token in enumerate(item):
        if isinstance(token, bool) or not isinstance(token, int | np.integer):
            raise BadRequestError(
                f"input[{index}][{position}] is not an integer token id.", param=_PARAM
            )
        value = int(token)
        if not 0 <= value < vocab_size:
            raise BadRequestError(
                f"input[{index}][{position}] is not a token id of this model "
                f"(valid ids are 0 to {vocab_size - 1}).",
                param=_PARAM,
            )
        ids.append(value)
    if not ids:
        raise BadRequestError(
            f"input[{index}] is an empty token array; every input must contain tokens.",
            param=_PARAM,
        )
    return ids
