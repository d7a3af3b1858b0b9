"""Claim mapping and rule merging (pure functions, no network)."""

from __future__ import annotations

from typing import Any

import pytest

from airlock.access.oidc_claims import claim_value, map_claims, rule_matches
from airlock.access.oidc_config import ClaimRule, OidcIssuerConfig
from airlock.errors import AuthenticationError, PermissionDeniedError


def _issuer(rules: list[ClaimRule], **overrides: Any) -> OidcIssuerConfig:
    fields: dict[str, Any] = {
        "issuer": "https://login.example.com/realms/corp",
        "jwks_url": "https://login.example.com/realms/corp/certs",
        "audiences": ["airlock"],
        "rules": rules,
    }
    fields.update(overrides)
    return OidcIssuerConfig(**fields)


def test_claim_value_paths() -> None:
    claims = {"realm_access": {"roles": ["admin"]}, "https://ex.com/tenant": "t1", "n": None}
    assert claim_value(claims, "realm_access.roles") == ["admin"]
    assert claim_value(claims, "https://ex.com/tenant") == "t1"
    assert claim_value(claims, "realm_access.missing") is None
    assert claim_value(claims, "n.deeper") is None
    assert claim_value(claims, "absent") is None


def test_rule_matching_forms() -> None:
    claims = {
        "groups": ["a", "b"],
        "role": "editor",
        "scope": "openid chat:write",
        "realm_access": {"roles": ["ops"]},
        "flag": True,
        "count": 3,
    }
    assert rule_matches(ClaimRule(when={"groups": "b"}), claims)
    assert not rule_matches(ClaimRule(when={"groups": "c"}), claims)
    assert rule_matches(ClaimRule(when={"role": "editor"}), claims)
    assert not rule_matches(ClaimRule(when={"role": "edit"}), claims)
    assert rule_matches(ClaimRule(when={"scope": "chat:write"}), claims)
    assert not rule_matches(ClaimRule(when={"scope": "chat"}), claims)
    assert rule_matches(ClaimRule(when={"realm_access.roles": "ops"}), claims)
    # Every condition must hold.
    assert not rule_matches(ClaimRule(when={"groups": "a", "role": "viewer"}), claims)
    assert rule_matches(ClaimRule(when={"groups": "a", "role": "editor"}), claims)
    # Non-string claims never match (no implicit str() conversion).
    assert not rule_matches(ClaimRule(when={"flag": "True"}), claims)
    assert not rule_matches(ClaimRule(when={"count": "3"}), claims)
    assert not rule_matches(ClaimRule(when={"missing": "x"}), claims)
    # An empty condition set is a default rule.
    assert rule_matches(ClaimRule(), claims)


def test_merge_of_several_matching_rules() -> None:
    issuer = _issuer(
        [
            ClaimRule(
                allowed_models=["small"],
                allowed_regions=["eu"],
                rpm=60,
                tpm=10_000,
                budget_usd_daily=1.0,
                privacy_policy="pseudonymize",
            ),
            ClaimRule(
                when={"groups": "research"},
                allowed_models=["large"],
                allowed_regions=["us"],
                rpm=600,
                budget_usd_monthly=100.0,
                privacy_policy="self-hosted-only",
            ),
            ClaimRule(when={"groups": "legal"}, privacy_policy="block", budget_usd_daily=0.5),
            ClaimRule(when={"groups": "nobody"}, allowed_models=["*"], is_admin=True, rpm=9999),
        ]
    )
    principal = map_claims(issuer, {"sub": "u1", "groups": ["research", "legal"]})
    assert principal.allowed_models == frozenset({"small", "large"})
    assert principal.allowed_regions == frozenset({"eu", "us"})
    assert principal.rpm == 600  # the largest
    assert principal.tpm == 10_000  # only one rule sets it
    assert principal.budget_usd_daily == 1.0
    assert principal.budget_usd_monthly == 100.0
    assert principal.privacy_policy == "block"  # the strictest
    assert principal.is_admin is False
    assert principal.tenant == "login.example.com"  # no tenant claim: the issuer alias
    assert principal.id == "oidc:login.example.com:u1"


def test_wildcard_and_defaults() -> None:
    issuer = _issuer(
        [
            ClaimRule(when={"groups": "all"}, allowed_models=["*"], allowed_regions=["*"]),
            ClaimRule(when={"groups": "x"}, allowed_models=["m"], is_admin=True),
            ClaimRule(when={"groups": "y"}, rpm=5),
        ],
        default_tenant="corp",
    )
    everything = map_claims(issuer, {"sub": "u", "groups": ["all", "x"]})
    assert everything.allowed_models is None
    assert everything.allowed_regions is None
    assert everything.is_admin is True
    assert everything.rpm is None
    assert everything.budget_usd_daily is None
    assert everything.privacy_policy is None
    assert everything.tenant == "corp"
    # No matching rule names models or regions: the caller gets none (deny by default).
    limited = map_claims(issuer, {"sub": "u", "groups": ["y"]})
    assert limited.allowed_models == frozenset()
    assert limited.allowed_regions == frozenset()
    assert limited.rpm == 5
    assert not limited.may_use_model("m")


def test_no_matching_rule_is_permission_denied() -> None:
    issuer = _issuer([ClaimRule(when={"groups": "a"}, allowed_models=["*"])])
    with pytest.raises(PermissionDeniedError):
        map_claims(issuer, {"sub": "u", "groups": ["b"]})
    with pytest.raises(PermissionDeniedError):
        map_claims(_issuer([]), {"sub": "u"})


@pytest.mark.parametrize("bad", [None, "", True, ["u"], {"id": "u"}])
def test_subject_must_be_a_non_empty_string(bad: Any) -> None:
    issuer = _issuer([ClaimRule()])
    claims: dict[str, Any] = {} if bad is None else {"sub": bad}
    with pytest.raises(AuthenticationError, match="missing the 'sub' claim"):
        map_claims(issuer, claims)


def test_numeric_subject_and_custom_claims() -> None:
    issuer = _issuer(
        [ClaimRule()],
        subject_claim="oid",
        tenant_claim="org.id",
        name_claim="preferred_username",
        name="corp",
    )
    principal = map_claims(
        issuer, {"oid": 1234, "org": {"id": "acme"}, "preferred_username": "ada"}
    )
    assert principal.id == "oidc:corp:1234"
    assert principal.tenant == "acme"
    assert principal.name == "ada"
    with pytest.raises(AuthenticationError, match=r"missing the 'org\.id' claim"):
        map_claims(issuer, {"oid": 1})
    # A missing display name falls back to the subject.
    assert map_claims(issuer, {"oid": 7, "org": {"id": "a"}}).name == "7"
