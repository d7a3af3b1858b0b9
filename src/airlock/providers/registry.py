"""Providers registered by name through one hook, the built-ins included."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airlock.config import DeploymentConfig, ModelConfig
from airlock.providers.base import Capabilities, Provider
from airlock.providers.resources import Resources

__all__ = ["ProviderFactory", "ProviderRegistry", "ProviderSpec", "builtin_registry"]

ProviderFactory = Callable[[DeploymentConfig, ModelConfig, Resources], Provider]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    factory: ProviderFactory
    capabilities: Capabilities
    # True when requests never leave hardware the operator controls (e.g. in-process).
    local: bool = False


class ProviderRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, ProviderSpec] = {}

    def register(self, spec: ProviderSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"provider '{spec.name}' is already registered")
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> ProviderSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(
                f"unknown provider '{name}'; known providers: {', '.join(self.names())}"
            ) from None

    def create(
        self, deployment: DeploymentConfig, model: ModelConfig, resources: Resources
    ) -> Provider:
        return self.spec(deployment.provider).factory(deployment, model, resources)


def builtin_registry() -> ProviderRegistry:
    """The registry with every provider airlock ships."""
    from airlock.providers import builtins

    registry = ProviderRegistry()
    builtins.register(registry)
    return registry
