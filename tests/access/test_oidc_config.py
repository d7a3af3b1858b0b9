"""Validation of the OIDC configuration models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from airlock.access.oidc_config import DEFAULT_ALGORITHMS, ClaimRule, OidcConfig, OidcIssuerConfig


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "issuer": "https://idp.example.com",
        "jwks_url": "https://idp.example.com/jwks",
        "audiences": ["airlock"],
    }
    fields.update(overrides)
    return fields


def test_defaults() -> None:
    config = OidcIssuerConfig(**_fields())
    assert tuple(config.algorithms) == DEFAULT_ALGORITHMS == ("RS256", "ES256", "EdDSA")
    assert config.leeway_seconds == 30
    assert config.jwks_min_refresh_seconds == 30
    assert config.subject_claim == "sub"
    assert config.alias == "idp.example.com"
    assert config.discovery_url == "https://idp.example.com/.well-known/openid-configuration"


@pytest.mark.parametrize("alg", ["HS256", "HS512", "none", "RS1", "rs256"])
def test_symmetric_and_unknown_algorithms_are_refused(alg: str) -> None:
    with pytest.raises(ValidationError, match="not allowed"):
        OidcIssuerConfig(**_fields(algorithms=["RS256", alg]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwks_url": None}, "set jwks_url, or discovery"),
        ({"jwks_url": "http://idp.example.com/jwks"}, "must use https"),
        ({"jwks_url": "ftp://idp.example.com/jwks"}, "absolute http"),
        ({"jwks_url": "/jwks"}, "absolute http"),
        ({"jwks_url": None, "discovery": True, "issuer": "http://idp.example.com"}, "https"),
        ({"audiences": []}, "at least 1"),
        ({"leeway_seconds": -1}, "greater than or equal"),
        ({"leeway_seconds": 3600}, "less than or equal"),
        ({"unknown": 1}, "Extra inputs"),
        ({"name": "has space"}, "pattern"),
    ],
)
def test_invalid_issuer_configs(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OidcIssuerConfig(**_fields(**overrides))


def test_http_allowed_for_loopback_or_when_opted_in() -> None:
    assert OidcIssuerConfig(**_fields(jwks_url="http://127.0.0.1:8080/jwks")).jwks_url
    assert OidcIssuerConfig(**_fields(jwks_url="http://localhost/jwks")).jwks_url
    assert OidcIssuerConfig(**_fields(jwks_url="http://[::1]:9/jwks")).jwks_url
    opted = OidcIssuerConfig(**_fields(jwks_url="http://keycloak.svc/jwks", allow_http=True))
    assert opted.allow_http


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"rpm": 0}, "greater than or equal to 1"),
        ({"tpm": -5}, "greater than or equal to 1"),
        ({"budget_usd_daily": -0.01}, "greater than or equal to 0"),
        ({"privacy_policy": "yolo"}, "block"),
        ({"when": {"": "x"}}, "claim names"),
        ({"when": {"a..b": "x"}}, "claim names"),
        ({"groups": "x"}, "Extra inputs"),
    ],
)
def test_invalid_rules(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ClaimRule(**rule)


def test_duplicate_issuers_and_aliases_are_refused() -> None:
    one = OidcIssuerConfig(**_fields())
    with pytest.raises(ValidationError, match="configured twice"):
        OidcConfig(issuers=[one, one])
    other = OidcIssuerConfig(**_fields(issuer="https://idp.example.com/other"))
    with pytest.raises(ValidationError, match="used twice"):
        OidcConfig(issuers=[one, other])
    named = OidcIssuerConfig(**_fields(issuer="https://idp.example.com/other", name="other"))
    assert len(OidcConfig(issuers=[one, named]).issuers) == 2


def test_config_loads_from_yaml_shaped_data() -> None:
    data = {
        "issuers": [
            {
                "issuer": "https://login.example.com/realms/corp",
                "name": "corp",
                "discovery": True,
                "audiences": ["airlock"],
                "tenant_claim": "tenant",
                "rules": [
                    {"when": {"groups": "ml"}, "allowed_models": ["*"], "rpm": 600},
                    {"when": {}, "allowed_models": ["small"], "rpm": 60},
                ],
            }
        ]
    }
    config = OidcConfig.model_validate(data)
    assert config.issuers[0].rules[0].rpm == 600
    assert config.issuers[0].jwks_url is None


def test_the_documented_example_is_valid() -> None:
    text = (Path(__file__).parents[2] / "docs" / "access.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = OidcConfig.model_validate(yaml.safe_load(block)["oidc"])
    corp, partners = config.issuers
    assert corp.alias == "corp"
    assert corp.rules[1].allowed_models == ["*"]
    assert partners.discovery is True
    assert partners.alias == "accounts.example.org"
