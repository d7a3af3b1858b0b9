"""Verified token claims → Principal, via the issuer's ``ClaimRule`` list.

Merge rules when several rules match (documented in docs/access.md):

- ``allowed_models`` / ``allowed_regions``: union; ``"*"`` in any matching rule grants
  all. If no matching rule names any, the caller gets none (deny by default).
- ``rpm``, ``tpm``, ``budget_usd_daily``, ``budget_usd_monthly``: the largest value
  among matching rules that set it; unset everywhere means no limit.
- ``privacy_policy``: the strictest set (``block`` > ``self-hosted-only`` >
  ``pseudonymize``); unset everywhere leaves the gateway default (``None``).
- ``is_admin``: true if any matching rule says so.

A valid token that matches no rule is refused with 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from airlock.access.oidc_config import ClaimRule, OidcIssuerConfig
from airlock.access.principal import Principal, PrivacyPolicy
from airlock.errors import AuthenticationError, PermissionDeniedError

__all__ = ["claim_value", "map_claims", "rule_matches"]

_WILDCARD = "*"
_Num = TypeVar("_Num", int, float)
_STRICTNESS: dict[PrivacyPolicy, int] = {"block": 2, "self-hosted-only": 1, "pseudonymize": 0}
# OAuth 2.0 scopes travel as one space-separated string (RFC 8693 §4.2, RFC 9068 §2.2.3).
_SPACE_SEPARATED = frozenset({"scope", "scp"})


def claim_value(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted path (``realm_access.roles``), or None when absent."""
    if path in claims:
        # Namespaced claim names may themselves contain dots (e.g. URLs); prefer them.
        return claims[path]
    current: Any = claims
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _holds(claims: Mapping[str, Any], path: str, wanted: str) -> bool:
    value = claim_value(claims, path)
    if isinstance(value, str):
        if path.rsplit(".", 1)[-1] in _SPACE_SEPARATED:
            return wanted in value.split()
        return value == wanted
    if isinstance(value, list):
        return any(isinstance(item, str) and item == wanted for item in value)
    return False


def rule_matches(rule: ClaimRule, claims: Mapping[str, Any]) -> bool:
    """Whether every condition of ``rule.when`` holds for ``claims``."""
    return all(_holds(claims, path, wanted) for path, wanted in rule.when.items())


def _union(grants: Iterable[list[str] | None]) -> frozenset[str] | None:
    names: set[str] = set()
    for grant in grants:
        if grant is None:
            continue
        if _WILDCARD in grant:
            return None
        names.update(grant)
    return frozenset(names)


def _largest(values: Iterable[_Num | None]) -> _Num | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _strictest(policies: Iterable[PrivacyPolicy | None]) -> PrivacyPolicy | None:
    strictest: PrivacyPolicy | None = None
    for policy in policies:
        if policy is not None and (
            strictest is None or _STRICTNESS[policy] > _STRICTNESS[strictest]
        ):
            strictest = policy
    return strictest


def _required_string(claims: Mapping[str, Any], path: str) -> str:
    value = claim_value(claims, path)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise AuthenticationError(f"token is missing the '{path}' claim")
    return str(value)


def map_claims(issuer: OidcIssuerConfig, claims: Mapping[str, Any]) -> Principal:
    """The Principal for a token whose signature and standard claims were verified."""
    subject = _required_string(claims, issuer.subject_claim)
    if issuer.tenant_claim is not None:
        tenant = _required_string(claims, issuer.tenant_claim)
    else:
        tenant = issuer.default_tenant or issuer.alias
    name = subject
    if issuer.name_claim is not None:
        display = claim_value(claims, issuer.name_claim)
        if isinstance(display, str) and display:
            name = display

    matched = [rule for rule in issuer.rules if rule_matches(rule, claims)]
    if not matched:
        raise PermissionDeniedError("the token is valid but no access rule of its issuer grants it")

    return Principal(
        id=f"oidc:{issuer.alias}:{subject}",
        kind="oidc",
        tenant=tenant,
        name=name,
        is_admin=any(rule.is_admin for rule in matched),
        allowed_models=_union(rule.allowed_models for rule in matched),
        allowed_regions=_union(rule.allowed_regions for rule in matched),
        rpm=_largest(rule.rpm for rule in matched),
        tpm=_largest(rule.tpm for rule in matched),
        budget_usd_daily=_largest(rule.budget_usd_daily for rule in matched),
        budget_usd_monthly=_largest(rule.budget_usd_monthly for rule in matched),
        privacy_policy=_strictest(rule.privacy_policy for rule in matched),
    )
