"""One validated settings object, built once at start-up.

Two sources: environment variables (``AIRLOCK_*``, see DESIGN.md) for where things live
and secrets, and an optional YAML file (``--config`` / ``AIRLOCK_CONFIG``) for what is
served and how it is routed. With no file, airlock serves the embedded model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from airlock.access.oidc_config import OidcConfig

__all__ = [
    "AccessConfig",
    "AppConfig",
    "AutoRouteConfig",
    "BreakerConfig",
    "ConfigError",
    "DeploymentConfig",
    "EnvSettings",
    "LedgerConfig",
    "ModelConfig",
    "PriceConfig",
    "PrivacyConfig",
    "RetryConfig",
    "RoutingConfig",
    "ServerConfig",
    "Settings",
    "TimeoutConfig",
    "load_settings",
]

Tier = Literal["self-hosted", "frontier"]
Capability = Literal["chat", "completions", "json_mode", "tools", "embeddings"]
# How sensitive requests may be served: refused, kept on self-hosted deployments, or
# pseudonymised before they may reach a frontier API (see docs/privacy.md).
PolicyName = Literal["block", "self-hosted-only", "pseudonymize"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and what is expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSettings(BaseModel):
    """Where things live and the admin secret; read from ``AIRLOCK_*`` variables only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    home: Path = Path(".airlock")
    config: Path | None = None
    master_key: str | None = None
    # The ledger database (PostgreSQL for replicas); SQLite in ``home`` when unset.
    database_url: str | None = None
    # The audit chain's key (AIRLOCK_AUDIT_KEY_FILE), shared by replicas; must exist.
    # ``home/audit.key``, created on first use, when unset.
    audit_key_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("audit_key_file", mode="before")
    @classmethod
    def _key_file_not_empty(cls, value: object) -> object:
        # An empty value would become Path("."): say what is wrong instead.
        if isinstance(value, str) and not value.strip():
            raise ValueError("AIRLOCK_AUDIT_KEY_FILE is set but empty; unset it or name a file")
        return value


class TimeoutConfig(_Strict):
    connect: Annotated[float, Field(gt=0)] = 5.0
    first_token: Annotated[float, Field(gt=0)] = 60.0
    total: Annotated[float, Field(gt=0)] = 600.0


class DeploymentConfig(_Strict):
    """One replica serving a model."""

    provider: str
    name: Annotated[str, Field(pattern=_NAME)] | None = None
    base_url: str | None = None
    # Credentials are referenced by environment variable name, never written inline.
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    upstream_model: str | None = None
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$")] = "local"
    timeouts: TimeoutConfig = TimeoutConfig()
    max_concurrency: Annotated[int, Field(ge=1)] = 64
    options: dict[str, Any] = Field(default_factory=dict)


class PriceConfig(_Strict):
    """USD per million tokens."""

    input_per_mtok: Annotated[float, Field(ge=0)] = 0.0
    output_per_mtok: Annotated[float, Field(ge=0)] = 0.0


class ModelConfig(_Strict):
    name: Annotated[str, Field(pattern=_NAME)]
    tier: Tier
    price: PriceConfig = PriceConfig()
    quality: Annotated[float, Field(ge=0, le=1)] = 0.5
    context_window: Annotated[int, Field(ge=1)] | None = None
    capabilities: frozenset[Capability] = frozenset({"chat", "completions"})
    # Overrides privacy.default_policy for requests sent to this model; a key's own
    # policy is stricter-wins with it (see api/privacy.py).
    privacy_policy: PolicyName | None = None
    deployments: Annotated[list[DeploymentConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _auto_reserved(self) -> ModelConfig:
        if self.name == "auto":
            raise ValueError("'auto' is the router's virtual model and cannot be declared")
        return self


class ServerConfig(_Strict):
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    # Requests that may wait for the embedded engine before being refused with 503.
    max_queued_requests: Annotated[int, Field(ge=1)] = 256
    # /metrics holds no content, but shows models, traffic and spend: admin key by default.
    metrics_anonymous: bool = False


class RetryConfig(_Strict):
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    backoff_base_s: Annotated[float, Field(ge=0)] = 0.1
    backoff_max_s: Annotated[float, Field(ge=0)] = 2.0
    retry_after_cap_s: Annotated[float, Field(ge=0)] = 5.0


class BreakerConfig(_Strict):
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    reset_after_s: Annotated[float, Field(gt=0)] = 15.0


class AutoRouteConfig(_Strict):
    """The virtual model ``auto``: the complexity scorer picks weak or strong."""

    # Chat models ``auto`` may choose from; empty means every chat model.
    candidates: list[str] = Field(default_factory=list)
    # Share of requests that should go to the strong model, calibrated on data; or an
    # explicit score threshold. ``threshold`` wins when both are given.
    strong_share: Annotated[float, Field(ge=0, le=1)] = 0.3
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None


class RoutingConfig(_Strict):
    auto: AutoRouteConfig = AutoRouteConfig()
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    health_check_interval_s: Annotated[float, Field(gt=0)] = 15.0


class PrivacyConfig(_Strict):
    default_policy: PolicyName = "self-hosted-only"
    # Requests whose text is at least this long are inspected in a worker thread so
    # the event loop keeps serving others.
    inspect_in_thread_chars: Annotated[int, Field(ge=0)] = 20_000
    # Present only so a config asking for content logging is refused by name:
    # airlock never logs content (invariant 1), whatever the config says.
    log_content: bool = False
    # Audit/ledger records older than this may be purged (``airlock audit purge``).
    retention_days: Annotated[int, Field(ge=1)] = 365

    @model_validator(mode="after")
    def _never_log_content(self) -> PrivacyConfig:
        if self.log_content:
            raise ValueError(
                "airlock never logs prompt or completion content; set log_content to false "
                "or remove it"
            )
        return self


class AccessConfig(_Strict):
    oidc: OidcConfig = OidcConfig()
    # Shared state for rate limits and budgets across replicas; in memory when unset.
    redis_url: str | None = None
    # Key prefix, so several gateways (or tests) can share one Redis without colliding.
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9:._-]{0,64}$")] = "airlock:"
    # Each request takes up to two Redis round trips; under load 64 connections ran out.
    redis_max_connections: Annotated[int, Field(ge=1)] = 256
    redis_pool_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # When Redis cannot be reached: refuse with 503 (default) or let requests through.
    fail_open: bool = False
    budget_soft_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8


class LedgerConfig(_Strict):
    # What the same tokens would have cost on this frontier model: the savings baseline.
    baseline_model: str = "gpt-4o"
    # How often queued ledger rows are written, and how many at most are queued.
    flush_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.2
    max_queue: Annotated[int, Field(ge=100)] = 10_000


class AppConfig(_Strict):
    models: list[ModelConfig] = Field(default_factory=list)
    server: ServerConfig = ServerConfig()
    routing: RoutingConfig = RoutingConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    access: AccessConfig = AccessConfig()
    ledger: LedgerConfig = LedgerConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> AppConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for model, chain in self.routing.fallbacks.items():
            for name in [model, *chain]:
                if name not in known:
                    raise ValueError(f"routing.fallbacks names an unknown model '{name}'")
        for name in self.routing.auto.candidates:
            if name not in known:
                raise ValueError(f"routing.auto.candidates names an unknown model '{name}'")
        return self


def default_app_config() -> AppConfig:
    """No config file: the embedded chat model and the packaged embedding model."""
    return AppConfig(
        models=[
            ModelConfig(
                name="smollm2",
                tier="self-hosted",
                quality=0.1,
                capabilities=frozenset({"chat", "completions", "json_mode", "tools"}),
                deployments=[DeploymentConfig(provider="embedded", region="local")],
            ),
            ModelConfig(
                name="all-minilm-l6-v2",
                tier="self-hosted",
                capabilities=frozenset({"embeddings"}),
                deployments=[DeploymentConfig(provider="embedded-embeddings", region="local")],
            ),
        ]
    )


class Settings(BaseModel):
    """Everything the process needs, validated once."""

    model_config = ConfigDict(frozen=True)

    env: EnvSettings
    app: AppConfig
    config_path: Path | None = None

    @property
    def home(self) -> Path:
        return self.env.home


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_app_config(path: Path) -> AppConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    # A LiteLLM proxy config is converted first (imported here: it imports this module).
    from airlock.litellm_config import convert_litellm, looks_like_litellm

    source = str(path)
    if looks_like_litellm(raw):
        raw = convert_litellm(raw, source)
        source += " (imported from LiteLLM format)"
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_settings(
    config_path: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Build the settings from the environment and the optional YAML file."""
    env_vars = dict(os.environ if environ is None else environ)
    try:
        env = EnvSettings.model_validate(
            {
                k.removeprefix("AIRLOCK_").lower(): v
                for k, v in env_vars.items()
                if k.startswith("AIRLOCK_")
            }
        )
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, "environment (AIRLOCK_*)")) from None
    path = config_path or env.config
    app = load_app_config(path) if path else default_app_config()
    return Settings(env=env, app=app, config_path=path)
