"""Models are loaded once per test session: loading reads and hashes the packaged files."""

from __future__ import annotations

import pytest

from airlock.engine.embeddings import SentenceEmbeddingModel, load_default_embedding_model


@pytest.fixture(scope="session")
def model() -> SentenceEmbeddingModel:
    """The default backend, exactly as the gateway loads it."""
    return load_default_embedding_model()


@pytest.fixture(scope="session")
def reference() -> SentenceEmbeddingModel:
    """The numpy float32 forward pass on the original safetensors weights."""
    return load_default_embedding_model(backend="numpy-float32")


@pytest.fixture(scope="session", params=["onnx-int8", "numpy-float32"])
def any_model(
    request: pytest.FixtureRequest,
    model: SentenceEmbeddingModel,
    reference: SentenceEmbeddingModel,
) -> SentenceEmbeddingModel:
    """Each backend in turn, for properties every backend must have."""
    return model if request.param == "onnx-int8" else reference
