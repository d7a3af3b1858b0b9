"""Sentence embeddings for ``/v1/embeddings``: the packaged all-MiniLM-L6-v2 model.

Load the model once with :func:`load_default_embedding_model` and keep the instance;
``embed`` is blocking and thread-safe, so call it from a worker thread. Inputs longer
than ``max_input_tokens`` are rejected with ``context_length_exceeded``, never truncated.
"""

from __future__ import annotations

from ._encoding import decode_base64, encode_base64
from ._factory import (
    DEFAULT_EMBEDDING_BACKEND,
    MINILM_MODEL_ID,
    EmbeddingBackend,
    load_default_embedding_model,
)
from ._inputs import EmbeddingInput
from ._model import EmbeddingModel, EmbeddingResult, SentenceEmbeddingModel
from ._resources import ModelFileError

__all__ = [
    "DEFAULT_EMBEDDING_BACKEND",
    "MINILM_MODEL_ID",
    "EmbeddingBackend",
    "EmbeddingInput",
    "EmbeddingModel",
    "EmbeddingResult",
    "ModelFileError",
    "SentenceEmbeddingModel",
    "decode_base64",
    "encode_base64",
    "load_default_embedding_model",
]
