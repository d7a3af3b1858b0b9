"""The authenticated caller, as every later stage sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Principal", "PrincipalKind", "PrivacyPolicy"]

PrincipalKind = Literal["master", "api_key", "oidc"]
# How a caller's sensitive requests may be served (issue 4): refused, kept on
# self-hosted deployments, or pseudonymised before they may reach a frontier API.
PrivacyPolicy = Literal["block", "self-hosted-only", "pseudonymize"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller and what it may do. ``None`` in an allow-list or limit means "no limit"."""

    id: str
    kind: PrincipalKind
    tenant: str
    name: str
    is_admin: bool = False
    allowed_models: frozenset[str] | None = None
    allowed_regions: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_daily: float | None = None
    budget_usd_monthly: float | None = None
    privacy_policy: PrivacyPolicy | None = None

    def may_use_model(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def may_use_region(self, region: str) -> bool:
        return self.allowed_regions is None or region in self.allowed_regions
