"""The providers airlock ships, registered through the same hook as any other."""

from __future__ import annotations

import anyio

from airlock.config import DeploymentConfig, ModelConfig
from airlock.engine.embeddings import EmbeddingModel
from airlock.providers.base import Capabilities, Provider
from airlock.providers.embedded import EmbeddedEmbeddingProvider
from airlock.providers.registry import ProviderRegistry, ProviderSpec
from airlock.providers.resources import Resources

__all__ = ["register"]


def _embedded_embeddings(
    dep: DeploymentConfig, model: ModelConfig, resources: Resources
) -> Provider:
    backend = str(dep.options.get("backend", "onnx-int8"))

    async def build() -> EmbeddingModel:
        from airlock.engine.embeddings import load_default_embedding_model

        return await anyio.to_thread.run_sync(
            lambda: load_default_embedding_model(backend=backend)  # type: ignore[arg-type]
        )

    async def load() -> EmbeddingModel:
        return await resources.shared(("embedding-model", backend), build)

    return EmbeddedEmbeddingProvider(load, resources.thread_limiter)


def register(registry: ProviderRegistry) -> None:
    registry.register(
        ProviderSpec(
            name="embedded-embeddings",
            factory=_embedded_embeddings,
            capabilities=Capabilities(embeddings=True),
            local=True,
        )
    )
    _register_embedded_chat(registry)


def _register_embedded_chat(registry: ProviderRegistry) -> None:
    # Filled in when the llama.cpp engine lands (engine/llama_engine.py).
    del registry
