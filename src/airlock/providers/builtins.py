"""The providers airlock ships, registered through the same hook as any other."""

from __future__ import annotations

from pathlib import Path

import anyio

from airlock.config import DeploymentConfig, ModelConfig
from airlock.engine.embeddings import EmbeddingModel
from airlock.providers.anthropic import CAPABILITIES as ANTHROPIC_CAPABILITIES
from airlock.providers.anthropic import anthropic
from airlock.providers.base import Capabilities, Provider
from airlock.providers.embedded import ChatEngine, EmbeddedChatProvider, EmbeddedEmbeddingProvider
from airlock.providers.openai_compatible import openai_compatible
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
    registry.register(
        ProviderSpec(
            name="openai-compatible",
            factory=openai_compatible,
            capabilities=Capabilities(
                chat=True, completions=True, embeddings=True, tools=True, json_mode=True
            ),
        )
    )
    registry.register(
        ProviderSpec(name="anthropic", factory=anthropic, capabilities=ANTHROPIC_CAPABILITIES)
    )
    _register_embedded_chat(registry)
    _register_vllm_managed(registry)


def _embedded_chat(dep: DeploymentConfig, model: ModelConfig, resources: Resources) -> Provider:
    from airlock.engine.settings import EngineSettings
    from airlock.providers.embedded import SealedModel

    opts = dep.options
    settings = EngineSettings(
        model_id=model.name,
        # SmolLM2 was trained with an 8K context; 0 would take the GGUF's own value.
        n_ctx=int(opts.get("n_ctx", 8192)),
        n_threads=int(opts["n_threads"]) if "n_threads" in opts else None,
        max_queued_jobs=int(opts.get("max_queued_jobs", 256)),
    )
    model_path = opts.get("model_path")
    sealed = SealedModel.from_options(opts, where=f"model '{model.name}' (provider embedded)")

    async def build() -> ChatEngine:
        from airlock.engine.llama_engine import EmbeddedEngine, ModelSource
        from airlock.engine.model_files import smollm2_gguf

        source: Path | ModelSource
        if sealed is not None:
            source = sealed.source
        else:
            source = Path(model_path) if model_path else smollm2_gguf()
        engine = EmbeddedEngine(source, settings)
        await engine.start()
        return engine

    async def close(engine: ChatEngine) -> None:
        from airlock.engine.llama_engine import EmbeddedEngine

        assert isinstance(engine, EmbeddedEngine)
        # Frees the model, then closes the memfd holding a sealed model's plaintext.
        await engine.aclose()

    async def load() -> ChatEngine:
        return await resources.shared(("llama", model_path, sealed, settings), build, close)

    return EmbeddedChatProvider(load)


def _register_embedded_chat(registry: ProviderRegistry) -> None:
    registry.register(
        ProviderSpec(
            name="embedded",
            factory=_embedded_chat,
            capabilities=EmbeddedChatProvider.capabilities,
            local=True,
        )
    )


def _vllm_managed(dep: DeploymentConfig, model: ModelConfig, resources: Resources) -> Provider:
    # Imported on use: the launcher stack is only needed when a deployment asks for it.
    from airlock.providers.vllm_managed import vllm_managed

    return vllm_managed(dep, model, resources)


def _register_vllm_managed(registry: ProviderRegistry) -> None:
    registry.register(
        ProviderSpec(
            name="vllm-managed",
            factory=_vllm_managed,
            capabilities=Capabilities(
                chat=True, completions=True, tools=True, json_mode=True, json_schema=True
            ),
            # The child is bound to loopback on this host: requests stay on this machine.
            local=True,
        )
    )
