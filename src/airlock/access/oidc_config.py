"""Typed configuration of trusted OIDC issuers and how their claims map to a Principal.

These models are meant to be embedded in airlock's YAML settings, e.g.::

    oidc:
      issuers:
        - issuer: https://login.example.com/realms/corp
          jwks_url: https://login.example.com/realms/corp/protocol/openid-connect/certs
          audiences: [airlock]
          rules:
            - when: {groups: ml-team}
              allowed_models: ["*"]
              rpm: 600

See docs/access.md for the merge rules when several rules match.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airlock.access.principal import PrivacyPolicy

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "ClaimRule",
    "OidcConfig",
    "OidcIssuerConfig",
    "check_url",
]

# Only public-key algorithms: HMAC ("HS*") is refused outright because a verifier
# that accepts it can be fooled into using the issuer's *public* key as the shared
# secret (algorithm confusion); "none" is never a signature.
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "EdDSA")

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeUsd = Annotated[float, Field(ge=0)]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http: bool, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL")
    if parts.scheme == "http" and not (allow_http or _is_loopback(parts.hostname)):
        # Keys fetched over plain HTTP can be swapped by anyone on the path.
        raise ValueError(f"{what} must use https (set allow_http: true to override)")


class ClaimRule(BaseModel):
    """One mapping rule: when every ``when`` condition holds, grant what the rule lists.

    ``when`` maps a claim name (dotted for nested claims, e.g. ``realm_access.roles``)
    to a required value: a string claim must equal it, a list claim must contain it.
    An empty ``when`` matches every valid token (a default rule).

    Fields left out grant nothing for that dimension. ``allowed_models`` or
    ``allowed_regions`` of ``["*"]`` grants all of them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: dict[str, str] = Field(default_factory=dict)
    allowed_models: list[str] | None = None
    allowed_regions: list[str] | None = None
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    budget_usd_daily: NonNegativeUsd | None = None
    budget_usd_monthly: NonNegativeUsd | None = None
    privacy_policy: PrivacyPolicy | None = None
    is_admin: bool = False

    @field_validator("when")
    @classmethod
    def _claim_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or any(not part for part in name.split(".")):
                raise ValueError("claim names must be non-empty (dotted paths allowed)")
        return value


class OidcIssuerConfig(BaseModel):
    """A trusted token issuer (identity provider) and its claim mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, description="exact value of the `iss` claim")
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="short alias used in principal ids; defaults to the issuer's host",
    )
    jwks_url: str | None = None
    discovery: bool = Field(
        default=False,
        description="find jwks_uri via {issuer}/.well-known/openid-configuration",
    )
    allow_http: bool = False
    audiences: list[str] = Field(min_length=1)
    algorithms: list[str] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS), min_length=1)
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    required_claims: list[str] = Field(default_factory=list)
    subject_claim: str = "sub"
    tenant_claim: str | None = None
    default_tenant: str | None = None
    name_claim: str | None = None
    jwks_ttl_seconds: float = Field(default=600.0, ge=1)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    rules: list[ClaimRule] = Field(default_factory=list)

    @field_validator("algorithms")
    @classmethod
    def _only_asymmetric(cls, value: list[str]) -> list[str]:
        for alg in value:
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"algorithm {alg!r} is not allowed; use public-key algorithms only "
                    f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
                )
        return value

    @model_validator(mode="after")
    def _key_source(self) -> OidcIssuerConfig:
        if self.jwks_url is None and not self.discovery:
            raise ValueError("set jwks_url, or discovery: true to find it from the issuer")
        if self.jwks_url is not None:
            check_url(self.jwks_url, self.allow_http, "jwks_url")
        if self.discovery:
            check_url(self.issuer, self.allow_http, "issuer (used for discovery)")
        return self

    @property
    def alias(self) -> str:
        """Short, stable name of this issuer for principal ids and logs."""
        if self.name is not None:
            return self.name
        host = urlsplit(self.issuer).hostname
        return host or self.issuer

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class OidcConfig(BaseModel):
    """All trusted issuers. Issuer strings must be unique."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuers: list[OidcIssuerConfig] = Field(default_factory=list)
    max_token_bytes: int = Field(default=16384, ge=256)

    @model_validator(mode="after")
    def _unique(self) -> OidcConfig:
        seen: set[str] = set()
        aliases: set[str] = set()
        for item in self.issuers:
            if item.issuer in seen:
                raise ValueError(f"issuer {item.issuer!r} is configured twice")
            if item.alias in aliases:
                raise ValueError(f"issuer name {item.alias!r} is used twice; set distinct names")
            seen.add(item.issuer)
            aliases.add(item.alias)
        return self
