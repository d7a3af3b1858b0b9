"""The model table: public model names, their deployments and provider adapters."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from airlock.access.principal import Principal
from airlock.config import AppConfig, DeploymentConfig, ModelConfig
from airlock.errors import ModelNotFoundError, UpstreamError
from airlock.providers.base import Provider
from airlock.providers.registry import ProviderRegistry
from airlock.providers.resources import Resources
from airlock.routing.breaker import CircuitBreaker

__all__ = ["Deployment", "ModelEntry", "ModelTable"]

T = TypeVar("T")


@dataclass(slots=True)
class Deployment:
    id: str
    model: ModelConfig
    config: DeploymentConfig
    provider: Provider
    local: bool
    in_flight: int = 0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Count one non-streaming call as in flight on this deployment."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def track(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """Count ``stream`` as in flight on this deployment until it ends or is closed.

        A failure after the first item counts against the circuit breaker here: the
        failover that opened the stream recorded its success at the first item and
        cannot see what happens after the first byte went to the client.
        """
        self.in_flight += 1
        started = False
        try:
            async for item in stream:
                started = True
                yield item
        except UpstreamError:
            if started:
                self.breaker.record_failure()
            raise
        finally:
            self.in_flight -= 1
            await stream.aclose()

    @property
    def upstream_model(self) -> str:
        return self.config.upstream_model or self.model.name

    @property
    def region(self) -> str:
        return self.config.region


@dataclass(slots=True)
class ModelEntry:
    config: ModelConfig
    deployments: list[Deployment] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name


class ModelTable:
    def __init__(self, entries: list[ModelEntry]) -> None:
        self._entries = {e.name: e for e in entries}

    @classmethod
    def build(cls, app: AppConfig, registry: ProviderRegistry, resources: Resources) -> ModelTable:
        entries: list[ModelEntry] = []
        for model in app.models:
            entry = ModelEntry(config=model)
            for i, dep in enumerate(model.deployments):
                spec = registry.spec(dep.provider)
                entry.deployments.append(
                    Deployment(
                        id=dep.name or f"{model.name}@{i}",
                        model=model,
                        config=dep,
                        provider=spec.factory(dep, model, resources),
                        local=spec.local,
                    )
                )
            entries.append(entry)
        return cls(entries)

    def all(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def deployments(self) -> list[Deployment]:
        return [d for e in self._entries.values() for d in e.deployments]

    def lookup(self, name: str) -> ModelEntry | None:
        return self._entries.get(name)

    def get(self, name: str, principal: Principal) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None or not principal.may_use_model(name):
            raise ModelNotFoundError(name)
        return entry

    def visible_to(self, principal: Principal) -> list[ModelEntry]:
        return [e for e in self._entries.values() if principal.may_use_model(e.name)]

    async def start(self) -> None:
        """Start every deployment at once (a managed vLLM takes minutes to come up);
        if one fails, close those that started and raise the first failure."""
        started: list[Deployment] = []

        async def start_one(dep: Deployment) -> None:
            await dep.provider.start()
            started.append(dep)

        try:
            async with anyio.create_task_group() as tg:
                for dep in self.deployments():
                    tg.start_soon(start_one, dep)
        except BaseExceptionGroup as group:
            with anyio.CancelScope(shield=True):
                for dep in reversed(started):
                    await dep.provider.aclose()
            raise group.exceptions[0] from None

    async def aclose(self) -> None:
        for dep in reversed(self.deployments()):
            await dep.provider.aclose()
