"""OIDC tokens and the admin key API, through the real server.

The gateway trusts a local identity provider (a real JWKS server on loopback); tokens
are signed here with its keys, and each kind of bad token is forged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.faulty_upstream import FaultyUpstream
from tests.support.idp import IdpServer, running_idp
from tests.support.server import GatewayProcess, start_gateway

AUDIENCE = "airlock-gw"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def idp(signing_key: rsa.RSAPrivateKey) -> Iterator[IdpServer]:
    with running_idp() as server:
        jwk = dict(RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True))
        server.state.jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, idp: IdpServer) -> Iterator[GatewayProcess]:
    root: Path = tmp_path_factory.mktemp("identity")
    with FaultyUpstream("up") as upstream:
        dep = {"provider": "openai-compatible", "base_url": upstream.base_url}
        config = {
            "models": [
                {"name": "team-model", "tier": "self-hosted", "deployments": [dep]},
                {"name": "other-model", "tier": "self-hosted", "deployments": [dep]},
            ],
            "access": {
                "oidc": {
                    "issuers": [
                        {
                            "issuer": idp.base_url,
                            "name": "corp",
                            "jwks_url": idp.jwks_url,
                            "allow_http": True,
                            "audiences": [AUDIENCE],
                            "tenant_claim": "tid",
                            "rules": [
                                {
                                    "when": {"groups": "ml-team"},
                                    "allowed_models": ["team-model"],
                                    "allowed_regions": ["*"],
                                    "rpm": 3,
                                },
                                {
                                    "when": {"groups": "admins"},
                                    "allowed_models": ["*"],
                                    "allowed_regions": ["*"],
                                    "is_admin": True,
                                },
                            ],
                        }
                    ]
                }
            },
        }
        (root / "airlock.yaml").write_text(yaml.safe_dump(config))
        gateway = start_gateway(root / "home", config=root / "airlock.yaml")
        yield gateway
        gateway.stop()


def _token(key: rsa.RSAPrivateKey, issuer: str, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "user-7",
        "tid": "acme",
        "groups": ["ml-team"],
        "iat": now,
        "exp": now + 300,
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _chat(gw: GatewayProcess, token: str, model: str = "team-model") -> httpx.Response:
    return httpx.post(
        gw.api_base + "/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_a_valid_token_is_mapped_to_its_rule(
    gw: GatewayProcess, idp: IdpServer, signing_key: rsa.RSAPrivateKey
) -> None:
    token = _token(signing_key, idp.base_url, sub="mapped-user")
    assert _chat(gw, token).status_code == 200
    models = httpx.get(gw.api_base + "/models", headers={"authorization": f"Bearer {token}"})
    assert [m["id"] for m in models.json()["data"]] == ["team-model", "auto"]
    refused = _chat(gw, token, "other-model")
    assert refused.status_code == 403
    # the rule's rpm (3) applies per subject, refused requests included
    assert _chat(gw, token).status_code == 200
    limited = _chat(gw, token)
    assert limited.status_code == 429
    assert "retry-after" in limited.headers


def _forged(idp: IdpServer, key: rsa.RSAPrivateKey) -> dict[str, str]:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    base = {"iss": idp.base_url, "aud": AUDIENCE, "sub": "x", "tid": "acme", "exp": now + 300}
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    payload = _b64(json.dumps({**base, "groups": ["admins"]}).encode())
    return {
        "expired": _token(key, idp.base_url, exp=now - 3600, iat=now - 7200),
        "not yet valid": _token(key, idp.base_url, nbf=now + 3600),
        "wrong audience": _token(key, idp.base_url, aud="someone-else"),
        "wrong issuer": _token(key, "https://evil.example"),
        "unknown kid": _token(key, idp.base_url, kid="k-unknown"),
        "attacker key": _token(attacker, idp.base_url),
        "alg none": f"{header_none}.{payload}.",
        # HMAC keyed with the public key's PEM: the classic algorithm-confusion forgery.
        "hmac with public key": _hs256(base, public_pem),
        "no matching rule": _token(key, idp.base_url, groups=["interns"]),
        "garbage": "eyJhbGciOi.not-a-token.x",
    }


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = _b64(json.dumps({**claims, "groups": ["admins"]}).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "not yet valid",
        "wrong audience",
        "wrong issuer",
        "unknown kid",
        "attacker key",
        "alg none",
        "hmac with public key",
        "no matching rule",
        "garbage",
    ],
)
def test_each_kind_of_bad_token_is_refused(
    gw: GatewayProcess, idp: IdpServer, signing_key: rsa.RSAPrivateKey, kind: str
) -> None:
    token = _forged(idp, signing_key)[kind]
    resp = _chat(gw, token)
    assert resp.status_code in (401, 403), resp.text
    expected = 403 if kind == "no matching rule" else 401
    assert resp.status_code == expected
    body = resp.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert token not in resp.text


def test_admins_manage_keys_over_http_and_revocation_is_immediate(
    gw: GatewayProcess, idp: IdpServer, signing_key: rsa.RSAPrivateKey
) -> None:
    admin = _token(signing_key, idp.base_url, groups=["admins"], sub="admin-1")
    user = _token(signing_key, idp.base_url, sub="user-9")
    payload = {"name": "svc", "tenant": "acme", "models": ["team-model"]}
    denied = httpx.post(
        gw.base_url + "/admin/keys", headers={"authorization": f"Bearer {user}"}, json=payload
    )
    assert denied.status_code == 403
    created = httpx.post(
        gw.base_url + "/admin/keys", headers={"authorization": f"Bearer {admin}"}, json=payload
    )
    assert created.status_code == 201, created.text
    issued = created.json()
    assert issued["key"].startswith("alk_")
    assert _chat(gw, issued["key"]).status_code == 200
    assert _chat(gw, issued["key"], "other-model").status_code == 403
    revoked = httpx.delete(
        gw.base_url + f"/admin/keys/{issued['id']}", headers={"authorization": f"Bearer {admin}"}
    )
    assert revoked.status_code == 200
    # Revoked in this process: the key cache is invalidated at once, no TTL wait.
    assert _chat(gw, issued["key"]).status_code == 401
    listing = httpx.get(gw.base_url + "/admin/keys", headers={"authorization": f"Bearer {admin}"})
    assert issued["key"] not in listing.text
    usage = httpx.get(
        gw.base_url + "/admin/usage?by=tenant", headers={"authorization": f"Bearer {user}"}
    )
    assert usage.status_code == 200
