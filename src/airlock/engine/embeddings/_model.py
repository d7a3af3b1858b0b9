"""The embedding model contract and the packaged all-MiniLM-L6-v2 implementation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ._batching import pad_batch, plan_batches
from ._inputs import EmbeddingInput, prepare_inputs
from ._pooling import mean_pool_normalize
from ._tokenizer import WordPieceTokenizer

__all__ = ["EmbeddingModel", "EmbeddingResult", "Encoder", "SentenceEmbeddingModel"]


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """Vectors in input order and the tokens the model processed.

    ``vectors`` is ``(len(inputs), dimensions)`` float32, each row L2-normalised.
    ``token_counts[i]`` is the number of tokens input ``i`` ran as, including the
    ``[CLS]``/``[SEP]`` pair the model adds; ``prompt_tokens`` is their sum.
    """

    vectors: NDArray[np.float32]
    token_counts: tuple[int, ...]

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


class EmbeddingModel(Protocol):
    """What the ``/v1/embeddings`` endpoint needs from an embedding model."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_input_tokens(self) -> int:
        """Longest accepted input in tokens; longer inputs are rejected, not truncated."""
        ...

    @property
    def max_inputs(self) -> int:
        """Most inputs accepted in one call."""
        ...

    @property
    def supports_dimensions(self) -> bool:
        """Whether the OpenAI ``dimensions`` parameter (shortened vectors) is supported."""
        ...

    def embed(self, inputs: EmbeddingInput) -> EmbeddingResult:
        """Embed a batch of texts or token-id arrays (blocking; CPU-bound)."""
        ...


class Encoder(Protocol):
    """A BERT-style encoder: padded ids and mask in, ``last_hidden_state`` out."""

    @property
    def name(self) -> str: ...

    def __call__(
        self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]
    ) -> NDArray[np.float32]: ...


class SentenceEmbeddingModel:
    """A sentence-transformers style model: encoder, mean pooling, L2 normalisation.

    Thread-safe: it holds no mutable state, the tokenizer is never reconfigured after
    construction and both encoders allow concurrent calls. ``embed`` is CPU-bound and
    blocking; call it from a worker thread, not the event loop.
    """

    def __init__(
        self,
        *,
        model_id: str,
        tokenizer: WordPieceTokenizer,
        encoder: Encoder,
        dimensions: int,
        max_input_tokens: int,
        max_inputs: int = 2048,
        max_batch_size: int = 32,
        max_batch_tokens: int = 4096,
    ) -> None:
        self._model_id = model_id
        self._tokenizer = tokenizer
        self._encoder = encoder
        self._dimensions = dimensions
        self._max_input_tokens = max_input_tokens
        self._max_inputs = max_inputs
        self._max_batch_size = max_batch_size
        self._max_batch_tokens = max_batch_tokens

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def max_input_tokens(self) -> int:
        return self._max_input_tokens

    @property
    def max_inputs(self) -> int:
        return self._max_inputs

    @property
    def supports_dimensions(self) -> bool:
        # all-MiniLM-L6-v2 was not trained with Matryoshka loss: truncated vectors degrade.
        return False

    @property
    def backend(self) -> str:
        """Name of the encoder implementation (for logs and the benchmark)."""
        return self._encoder.name

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` in the form ``embed`` accepts as a token-id input."""
        return self._tokenizer.encode_unframed(text)

    def embed(self, inputs: EmbeddingInput) -> EmbeddingResult:
        sequences = prepare_inputs(
            inputs,
            self._tokenizer,
            max_inputs=self._max_inputs,
            max_input_tokens=self._max_input_tokens,
        )
        vectors = np.empty((len(sequences), self._dimensions), dtype=np.float32)
        batches = plan_batches(
            [len(s) for s in sequences],
            max_batch_size=self._max_batch_size,
            max_batch_tokens=self._max_batch_tokens,
        )
        for batch in batches:
            vectors[batch] = self._embed_batch([sequences[i] for i in batch])
        return EmbeddingResult(vectors=vectors, token_counts=tuple(len(s) for s in sequences))

    def _embed_batch(self, sequences: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        input_ids, attention_mask = pad_batch(sequences, self._tokenizer.pad_id)
        hidden = self._encoder(input_ids, attention_mask)
        if hidden.shape != (*input_ids.shape, self._dimensions):
            raise RuntimeError(f"encoder returned hidden states of shape {hidden.shape}")
        return mean_pool_normalize(hidden, attention_mask)
