"""Deployment provider ``vllm-managed``: airlock starts and supervises vLLM itself.

On :meth:`VllmManagedProvider.start` the provider launches vLLM's OpenAI server as a
child process through :class:`~airlock.deploy.launcher.VllmProcess` (own process group,
loopback bind, request logging off, API key in the child's environment, restart with
backoff when it dies), waits until ``/health`` answers, and then serves every call
through an :class:`~airlock.providers.openai_compatible.OpenAICompatibleProvider`
pointed at the child's port. :meth:`VllmManagedProvider.aclose` drains (the gateway's
own in-flight count and vLLM's metrics) and stops the child.

While the child is not ready (restarting, draining, stopped) calls are refused at once
with a retryable 503 (``Retry-After``) instead of being sent: the gateway's failover moves
on to another deployment without a connection attempt, and a draining child receives
no new work while its last requests finish.

Options (``deployments[].options``)::

    model_dir          Hugging Face model directory (default: $AIRLOCK_VLLM_MODEL or
                       <repo>/.cache/smollm2-hf)
    python             interpreter of the vLLM virtualenv (default: $AIRLOCK_VLLM_VENV or
                       <repo>/.venv-vllm, bin/python)
    max_model_len      context length (default 2048)
    max_num_seqs       concurrent sequences (default 16)
    extra_flags        further vLLM engine flags, e.g. ["--dtype", "bfloat16"]
    port               loopback port (default: a free one)
    startup_timeout_s  seconds to wait for /health on each (re)start (default 900)
    drain_timeout_s    seconds to wait for in-flight requests on shutdown (default 30)
    max_restarts       give up after this many restarts (default: never)
    cpu_kvcache_gb     CPU backend: KV cache GiB (VLLM_CPU_KVCACHE_SPACE)
    cpu_threads_bind   CPU backend: cores for OpenMP threads (VLLM_CPU_OMP_THREADS_BIND)
    log_path           the child's log (default: $AIRLOCK_HOME/vllm/<deployment>-<port>.log)

The served model name is the deployment's ``upstream_model`` (else the model's name).
The API key is read from ``api_key_env`` when the deployment names one, else a random
key is made for each gateway process; it never appears on a command line or in a log.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airlock.config import ConfigError, DeploymentConfig, ModelConfig
from airlock.deploy.launcher import (
    SupervisorPolicy,
    VllmChildSpec,
    VllmProcess,
    spec_env_for_cpu,
)
from airlock.deploy.launcher_flags import LaunchFlagError, build_command
from airlock.deploy.vllm_env import (
    VllmEnv,
    VllmSetupError,
    find_model_dir,
    find_vllm_env,
    static_model_dir,
)
from airlock.errors import UpstreamError
from airlock.protocol.chat import ChatCompletionRequest
from airlock.protocol.completions import CompletionRequest
from airlock.protocol.embeddings import EmbeddingRequest
from airlock.protocol.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    EmbeddingResponse,
)
from airlock.providers.base import CallContext, Provider
from airlock.providers.openai_compatible import OpenAICompatibleProvider, model_capabilities
from airlock.providers.resources import Resources

__all__ = [
    "VllmManagedOptions",
    "VllmManagedProvider",
    "VllmUnavailableError",
    "vllm_managed",
]

T = TypeVar("T")
_LOOPBACK = "127.0.0.1"
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class VllmUnavailableError(UpstreamError):
    """The managed vLLM is not ready (starting, restarting, draining, stopped)."""

    status_code = 503
    default_code = "upstream_unavailable"

    def __init__(self, deployment: str, state: str) -> None:
        super().__init__(
            f"The vLLM deployment '{deployment}' is {state} and not accepting requests.",
            retryable=True,
        )
        # Shown to the client only when no other deployment could take the request.
        self.headers["retry-after"] = "5"


class VllmManagedOptions(BaseModel):
    """``deployments[].options`` of a ``vllm-managed`` deployment (see module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path | None = None
    python: Path | None = None
    max_model_len: Annotated[int, Field(gt=0)] = 2048
    max_num_seqs: Annotated[int, Field(gt=0)] = 16
    extra_flags: tuple[str, ...] = ()
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    startup_timeout_s: Annotated[float, Field(gt=0)] = 900.0
    drain_timeout_s: Annotated[float, Field(ge=0)] = 30.0
    max_restarts: Annotated[int, Field(ge=0)] | None = None
    cpu_kvcache_gb: Annotated[int, Field(ge=1)] | None = None
    cpu_threads_bind: str | None = None
    log_path: Path | None = None

    def engine_args(self) -> tuple[str, ...]:
        return (
            "--max-model-len",
            str(self.max_model_len),
            "--max-num-seqs",
            str(self.max_num_seqs),
            *self.extra_flags,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


class _ChildClient(OpenAICompatibleProvider):
    """The openai-compatible adapter with the child's key held in memory, not in env."""

    def __init__(
        self, deployment: DeploymentConfig, model: ModelConfig, name: str, api_key: str
    ) -> None:
        super().__init__(deployment, model, name)
        self._api_key = api_key

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"}


class VllmManagedProvider(Provider):
    """One vLLM child per deployment, served through the openai-compatible adapter."""

    def __init__(
        self,
        deployment: DeploymentConfig,
        model: ModelConfig,
        name: str,
        options: VllmManagedOptions,
        home: Path,
    ) -> None:
        self.capabilities = model_capabilities(model)
        self._deployment = deployment
        self._model = model
        self._name = name
        self._options = options
        self._home = home
        self._served_name = deployment.upstream_model or model.name
        self._process: VllmProcess | None = None
        self._client: _ChildClient | None = None
        self._in_flight = 0

    # -- what tests and operators read ----------------------------------------------------

    @property
    def process(self) -> VllmProcess | None:
        """The supervised child (None before :meth:`start`)."""
        return self._process

    @property
    def in_flight(self) -> int:
        """Calls this provider has sent to the child and not yet finished."""
        return self._in_flight

    # -- lifecycle ------------------------------------------------------------------------

    def _env(self) -> VllmEnv:
        python = self._options.python
        if python is None:
            return find_vllm_env()
        if not os.access(python, os.X_OK):
            raise VllmSetupError(
                f"deployment '{self._name}': options.python {python} is not an executable"
            )
        return VllmEnv(venv=python.parent.parent, python=python)

    def _api_key(self) -> str:
        env_name = self._deployment.api_key_env
        if env_name is None:
            return secrets.token_urlsafe(32)
        key = os.environ.get(env_name)
        if not key:
            raise ConfigError(
                f"deployment '{self._name}': environment variable {env_name} "
                "(api_key_env) is not set"
            )
        return key

    async def start(self) -> None:
        opts = self._options
        env = self._env()
        model_dir = find_model_dir(opts.model_dir)
        port = opts.port or _free_port()
        log_path = opts.log_path or (
            self._home / "vllm" / f"{_UNSAFE_FILE_CHARS.sub('_', self._name)}-{port}.log"
        )
        api_key = self._api_key()
        spec = VllmChildSpec(
            model=static_model_dir(model_dir),
            port=port,
            log_path=log_path,
            host=_LOOPBACK,
            served_model_name=self._served_name,
            engine_args=opts.engine_args(),
            api_key=api_key,
            env=spec_env_for_cpu(
                kvcache_gb=opts.cpu_kvcache_gb, threads_bind=opts.cpu_threads_bind
            ),
        )
        policy = SupervisorPolicy(
            health_timeout=opts.startup_timeout_s,
            drain_timeout=opts.drain_timeout_s,
            max_restarts=opts.max_restarts,
        )
        process = VllmProcess(spec, policy, env=env, in_flight=lambda: self._in_flight)
        # Set before start: calls meanwhile are refused as "starting", not "not started".
        self._process = process
        await process.start()
        child = self._deployment.model_copy(
            update={"base_url": process.base_url, "api_key_env": None}
        )
        client = _ChildClient(child, self._model, self._name, api_key)
        await client.start()
        self._client = client

    async def aclose(self) -> None:
        """Drain and stop the child, then close the connection pool. Safe to call twice."""
        process = self._process
        if process is not None:
            await process.stop(drain=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def check_health(self) -> bool:
        # The adapter's own probe: a connection of its own (a busy pool is loaded, not
        # unhealthy) and no cookies, like every upstream client.
        process, client = self._process, self._client
        if process is None or client is None or not process.accepting:
            return False
        return await client.check_health()

    # -- calls ----------------------------------------------------------------------------

    def _admit(self) -> _ChildClient:
        """The adapter, if the child may take a request now; else a retryable 503."""
        process, client = self._process, self._client
        if process is None or client is None:
            raise VllmUnavailableError(self._name, "not started")
        if not process.accepting:
            raise VllmUnavailableError(self._name, process.state.value)
        return client

    async def _call(self, call: Callable[[_ChildClient], Awaitable[T]]) -> T:
        client = self._admit()
        self._in_flight += 1
        try:
            return await call(client)
        finally:
            self._in_flight -= 1

    async def _guarded_stream(
        self, open_stream: Callable[[_ChildClient], AsyncGenerator[T, None]]
    ) -> AsyncGenerator[T, None]:
        # Admission happens on the first pull, inside the gateway's failover attempt.
        stream = open_stream(self._admit())
        self._in_flight += 1
        try:
            async for item in stream:
                yield item
        finally:
            self._in_flight -= 1
            await stream.aclose()

    async def chat(self, req: ChatCompletionRequest, ctx: CallContext) -> ChatCompletion:
        return await self._call(lambda c: c.chat(req, ctx))

    def chat_stream(
        self, req: ChatCompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        return self._guarded_stream(lambda c: c.chat_stream(req, ctx))

    async def completion(self, req: CompletionRequest, ctx: CallContext) -> Completion:
        return await self._call(lambda c: c.completion(req, ctx))

    def completion_stream(
        self, req: CompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[Completion, None]:
        return self._guarded_stream(lambda c: c.completion_stream(req, ctx))

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> EmbeddingResponse:
        return await self._call(lambda c: c.embed(req, ctx))


def _options(dep: DeploymentConfig, name: str) -> VllmManagedOptions:
    try:
        opts = VllmManagedOptions.model_validate(dep.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: "
            + ("unknown option" if err["type"] == "extra_forbidden" else err["msg"])
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"deployment '{name}' (vllm-managed) options: {problems}") from None
    try:
        # Refused flags (content logging, --api-key on argv, ...) fail at load, not at launch.
        build_command(
            python=Path("python"),
            model_dir=Path("model"),
            host=_LOOPBACK,
            port=opts.port or 8000,
            served_model_name=dep.upstream_model or "model",
            engine_args=opts.engine_args(),
            base_env={},
            extra_env=spec_env_for_cpu(
                kvcache_gb=opts.cpu_kvcache_gb, threads_bind=opts.cpu_threads_bind
            ),
        )
    except LaunchFlagError as exc:
        raise ConfigError(f"deployment '{name}' (vllm-managed): {exc.message}") from None
    return opts


def vllm_managed(dep: DeploymentConfig, model: ModelConfig, resources: Resources) -> Provider:
    """Provider factory for ``provider: vllm-managed``."""
    index = model.deployments.index(dep)
    name = dep.name or f"{model.name}#{index}"
    if dep.base_url is not None:
        raise ConfigError(
            f"deployment '{name}' (vllm-managed): base_url is not allowed; "
            "airlock binds the vLLM it starts to a loopback port (options.port)"
        )
    return VllmManagedProvider(dep, model, name, _options(dep, name), resources.home)
