"""OidcAuthenticator against a real local JWKS server, with every kind of forged token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from airlock.access.oidc import OidcAuthenticator, looks_like_jwt
from airlock.access.oidc_config import ClaimRule, OidcConfig, OidcIssuerConfig
from airlock.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError
from tests.access.conftest import FakeClock, IdpServer

pytestmark = pytest.mark.anyio

AUDIENCE = "airlock"


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    rsa_rotated: rsa.RSAPrivateKey
    rsa_attacker: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_rotated=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_attacker=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
    )


def _jwk(public: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    data = dict(data, kid=kid, use="sig")
    if alg is not None:
        data["alg"] = alg
    return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "user-42",
        "tid": "acme",
        "name": "Ada",
        "groups": ["ml-team"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _issuer_config(idp: IdpServer, **overrides: Any) -> OidcIssuerConfig:
    fields: dict[str, Any] = {
        "issuer": idp.base_url,
        "name": "corp",
        "jwks_url": idp.jwks_url,
        "audiences": [AUDIENCE],
        "tenant_claim": "tid",
        "name_claim": "name",
        "rules": [
            ClaimRule(when={"groups": "ml-team"}, allowed_models=["llama", "qwen"], rpm=100),
            ClaimRule(when={"groups": "admins"}, allowed_models=["*"], is_admin=True),
        ],
    }
    fields.update(overrides)
    return OidcIssuerConfig(**fields)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def published(idp: IdpServer, keys: Keys) -> IdpServer:
    idp.state.jwks = {
        "keys": [
            _jwk(keys.rsa.public_key(), "rsa-1", "RS256"),
            _jwk(keys.ec.public_key(), "ec-1"),
            _jwk(keys.ed.public_key(), "ed-1"),
        ]
    }
    return idp


@pytest.fixture
def auth(published: IdpServer, http: httpx.AsyncClient, clock: FakeClock) -> OidcAuthenticator:
    return OidcAuthenticator(OidcConfig(issuers=[_issuer_config(published)]), http, clock=clock)


def _sign(key: Any, claims: dict[str, Any], alg: str = "RS256", kid: str | None = "rsa-1") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


async def _refused(auth: OidcAuthenticator, token: str, reason: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        await auth.authenticate(token)
    err = info.value
    assert err.status_code == 401
    assert reason in err.message
    # The token, and each of its parts, never appears in what the caller sees.
    for part in [token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in err.message
            assert part not in str(err.to_body())
    return err


async def test_good_rs256_token_maps_to_principal(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    principal = await auth.authenticate(_sign(keys.rsa, _claims(published.base_url)))
    assert principal.id == "oidc:corp:user-42"
    assert principal.kind == "oidc"
    assert principal.tenant == "acme"
    assert principal.name == "Ada"
    assert principal.allowed_models == frozenset({"llama", "qwen"})
    assert principal.rpm == 100
    assert principal.is_admin is False


async def test_good_es256_and_eddsa_tokens(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    claims = _claims(published.base_url, groups=["admins"])
    es = await auth.authenticate(_sign(keys.ec, claims, alg="ES256", kid="ec-1"))
    ed = await auth.authenticate(_sign(keys.ed, claims, alg="EdDSA", kid="ed-1"))
    for principal in (es, ed):
        assert principal.is_admin is True
        assert principal.allowed_models is None


async def test_token_without_kid_uses_the_single_matching_key(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    token = _sign(keys.ec, _claims(published.base_url), alg="ES256", kid=None)
    assert (await auth.authenticate(token)).id == "oidc:corp:user-42"


async def test_expired_token(auth: OidcAuthenticator, keys: Keys, published: IdpServer) -> None:
    now = int(time.time())
    token = _sign(
        keys.rsa, _claims(published.base_url, iat=now - 600, nbf=now - 600, exp=now - 120)
    )
    await _refused(auth, token, "token has expired")


async def test_expiry_within_leeway_is_accepted(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    now = int(time.time())
    token = _sign(keys.rsa, _claims(published.base_url, iat=now - 600, exp=now - 5))
    assert (await auth.authenticate(token)).id == "oidc:corp:user-42"


async def test_not_yet_valid_token(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    now = int(time.time())
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url, nbf=now + 300)), "token is not yet valid"
    )
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url, iat=now + 300)), "token is not yet valid"
    )


async def test_wrong_issuer(auth: OidcAuthenticator, keys: Keys, published: IdpServer) -> None:
    await _refused(
        auth, _sign(keys.rsa, _claims("https://evil.example.com")), "token issuer not allowed"
    )
    # Issuer comparison is exact: a trailing slash is a different issuer.
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url + "/")), "token issuer not allowed"
    )


async def test_wrong_or_missing_audience(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url, aud="other-app")), "audience not allowed"
    )
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url, aud=None)), "missing the 'aud' claim"
    )
    listed = _sign(keys.rsa, _claims(published.base_url, aud=["other-app", AUDIENCE]))
    assert (await auth.authenticate(listed)).id == "oidc:corp:user-42"


@pytest.mark.parametrize("claim", ["exp", "iss", "sub", "tid"])
async def test_missing_required_claims(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, claim: str
) -> None:
    token = _sign(keys.rsa, _claims(published.base_url, **{claim: None}))
    await _refused(auth, token, f"missing the '{claim}' claim")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_is_refused(auth: OidcAuthenticator, published: IdpServer, alg: str) -> None:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(_claims(published.base_url, groups=["admins"])).encode())
    await _refused(auth, f"{header}.{payload}.", "alg 'none'")


async def test_hs256_signed_with_the_public_key_is_refused(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    # The classic algorithm-confusion forgery: HMAC keyed with the issuer's public PEM.
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(_claims(published.base_url, groups=["admins"])).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = _b64(hmac.new(pem, signing_input, hashlib.sha256).digest())
    await _refused(auth, f"{header}.{payload}.{signature}", "HMAC-signed tokens are not allowed")


async def test_tampered_payload(auth: OidcAuthenticator, keys: Keys, published: IdpServer) -> None:
    header, _, signature = _sign(keys.rsa, _claims(published.base_url)).split(".")
    forged = _b64(json.dumps(_claims(published.base_url, groups=["admins"])).encode())
    await _refused(auth, f"{header}.{forged}.{signature}", "signature is invalid")


async def test_wrong_signing_key_with_a_known_kid(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    token = _sign(keys.rsa_attacker, _claims(published.base_url), kid="rsa-1")
    await _refused(auth, token, "signature is invalid")


async def test_algorithm_must_match_the_key(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    # ES256 header pointing at the RSA key, and RS256 header pointing at the EC key.
    es = _sign(keys.ec, _claims(published.base_url), alg="ES256", kid="rsa-1")
    await _refused(auth, es, "does not match its signing key")
    rs = _sign(keys.rsa, _claims(published.base_url), alg="RS256", kid="ec-1")
    await _refused(auth, rs, "does not match its signing key")


async def test_algorithm_not_configured_for_issuer(
    published: IdpServer, http: httpx.AsyncClient, keys: Keys
) -> None:
    config = OidcConfig(issuers=[_issuer_config(published, algorithms=["ES256"])])
    auth = OidcAuthenticator(config, http)
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url)), "algorithm not allowed for this issuer"
    )


async def test_unknown_kid_then_rotation(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, clock: FakeClock
) -> None:
    good = _sign(keys.rsa, _claims(published.base_url))
    await auth.authenticate(good)
    assert published.state.count("/jwks.json") == 1

    rotated = _sign(keys.rsa_rotated, _claims(published.base_url), kid="rsa-2")
    await _refused(auth, rotated, "signing key is not known")

    # The issuer publishes the new key; after the refresh interval the token is accepted.
    published.state.jwks["keys"].append(_jwk(keys.rsa_rotated.public_key(), "rsa-2"))
    clock.advance(31)
    assert (await auth.authenticate(rotated)).id == "oidc:corp:user-42"
    assert published.state.count("/jwks.json") == 2


async def test_forged_kids_cannot_flood_the_idp(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, clock: FakeClock
) -> None:
    for i in range(50):
        forged = _sign(keys.rsa_attacker, _claims(published.base_url), kid=f"forged-{i}")
        await _refused(auth, forged, "signing key is not known")
    # One initial fetch; every unknown kid within the interval is refused without a fetch.
    assert published.state.count("/jwks.json") == 1
    clock.advance(31)
    await _refused(
        auth, _sign(keys.rsa_attacker, _claims(published.base_url), kid="x"), "not known"
    )
    assert published.state.count("/jwks.json") == 2
    assert auth.jwks_fetch_count(published.base_url) == 2


async def test_jwks_ttl_expiry_refetches(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, clock: FakeClock
) -> None:
    token = _sign(keys.rsa, _claims(published.base_url))
    await auth.authenticate(token)
    clock.advance(100)
    await auth.authenticate(token)
    assert published.state.count("/jwks.json") == 1
    clock.advance(600)
    await auth.authenticate(token)
    assert published.state.count("/jwks.json") == 2


async def test_idp_down_at_start_is_503_and_not_hammered(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, clock: FakeClock
) -> None:
    published.state.fail = True
    token = _sign(keys.rsa, _claims(published.base_url))
    for _ in range(3):
        with pytest.raises(ServiceUnavailableError) as info:
            await auth.authenticate(token)
        assert info.value.status_code == 503
    assert published.state.count("/jwks.json") == 1
    published.state.fail = False
    clock.advance(31)
    assert (await auth.authenticate(token)).id == "oidc:corp:user-42"


async def test_idp_down_later_keeps_known_keys(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, clock: FakeClock
) -> None:
    token = _sign(keys.rsa, _claims(published.base_url))
    await auth.authenticate(token)
    published.state.fail = True
    clock.advance(700)  # past the TTL: the refresh fails, the cached keys stay in use
    assert (await auth.authenticate(token)).id == "oidc:corp:user-42"
    assert published.state.count("/jwks.json") == 2


async def test_symmetric_and_weak_keys_in_jwks_are_ignored(
    published: IdpServer, http: httpx.AsyncClient, keys: Keys
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    published.state.jwks = {
        "keys": [
            {"kty": "oct", "kid": "oct-1", "k": _b64(b"secret-shared-key-material-32byt")},
            _jwk(weak.public_key(), "weak-1"),
            _jwk(keys.rsa.public_key(), "enc-1") | {"use": "enc"},
            {"kty": "RSA", "kid": "broken"},
            "not-a-key",
            _jwk(keys.rsa.public_key(), "rsa-1"),
        ]
    }
    auth = OidcAuthenticator(OidcConfig(issuers=[_issuer_config(published)]), http)
    with pytest.warns(InsecureKeyLengthWarning):
        weak_token = _sign(weak, _claims(published.base_url), kid="weak-1")
    await _refused(auth, weak_token, "signing key is not known")
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url), kid="enc-1"), "signing key is not known"
    )
    await _refused(
        auth, _sign(keys.rsa, _claims(published.base_url), kid="broken"), "signing key is not known"
    )
    assert (await auth.authenticate(_sign(keys.rsa, _claims(published.base_url)))).tenant == "acme"


async def test_discovery(published: IdpServer, http: httpx.AsyncClient, keys: Keys) -> None:
    published.state.discovery = {"issuer": published.base_url, "jwks_uri": published.jwks_url}
    config = OidcConfig(issuers=[_issuer_config(published, jwks_url=None, discovery=True)])
    auth = OidcAuthenticator(config, http)
    assert (await auth.authenticate(_sign(keys.rsa, _claims(published.base_url)))).tenant == "acme"
    assert published.state.count("/.well-known/openid-configuration") == 1


async def test_discovery_naming_another_issuer_is_refused(
    published: IdpServer, http: httpx.AsyncClient, keys: Keys
) -> None:
    published.state.discovery = {
        "issuer": "https://evil.example.com",
        "jwks_uri": published.jwks_url,
    }
    config = OidcConfig(issuers=[_issuer_config(published, jwks_url=None, discovery=True)])
    auth = OidcAuthenticator(config, http)
    with pytest.raises(ServiceUnavailableError):
        await auth.authenticate(_sign(keys.rsa, _claims(published.base_url)))
    assert published.state.count("/jwks.json") == 0


async def test_valid_token_matching_no_rule_is_403(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    token = _sign(keys.rsa, _claims(published.base_url, groups=["visitors"]))
    with pytest.raises(PermissionDeniedError) as info:
        await auth.authenticate(token)
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    "token",
    [
        "alk_3q2WmZ8xYvKpLr0NcHfT5uA1bE7dGiJo",
        "",
        "eyJhbGciOiJSUzI1NiJ9",
        "a.b.c",
        "eyJ.abc.def.ghi",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig with space",
    ],
)
async def test_non_jwts_are_recognised_cheaply(auth: OidcAuthenticator, token: str) -> None:
    assert looks_like_jwt(token) is False
    assert await auth.verify(token) is None
    await _refused(auth, token, "token is not a JWT")


async def test_jwt_shaped_garbage_is_malformed(auth: OidcAuthenticator) -> None:
    token = "eyJub3QganNvbg.eyJzdWIiOiIxIn0.c2ln"
    assert looks_like_jwt(token) is True
    await _refused(auth, token, "token is malformed")
    # A header that decodes but is not a JWS header at all.
    header = _b64(json.dumps({"typ": "JWT"}).encode())
    await _refused(auth, f"{header}.eyJzdWIiOiIxIn0.c2ln", "token")


async def test_oversized_token(auth: OidcAuthenticator, keys: Keys, published: IdpServer) -> None:
    padded = _sign(keys.rsa, _claims(published.base_url, pad="x" * 20000))
    await _refused(auth, padded, "token is too large")


async def test_verify_routes_jwts_to_authentication(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    token = _sign(keys.rsa, _claims(published.base_url))
    assert looks_like_jwt(token) is True
    principal = await auth.verify(token)
    assert principal is not None
    assert principal.id == "oidc:corp:user-42"
    with pytest.raises(AuthenticationError):
        await auth.verify(_sign(keys.rsa_attacker, _claims(published.base_url)))


async def test_no_issuers_refuses_every_jwt(
    http: httpx.AsyncClient, keys: Keys, published: IdpServer
) -> None:
    auth = OidcAuthenticator(OidcConfig(), http)
    assert auth.enabled is False
    await _refused(auth, _sign(keys.rsa, _claims(published.base_url)), "issuer not allowed")


async def test_refusals_never_log_the_token(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    now = int(time.time())
    bad = [
        _sign(keys.rsa, _claims(published.base_url, exp=now - 600, iat=now - 900, nbf=None)),
        _sign(keys.rsa_attacker, _claims(published.base_url)),
        _sign(keys.rsa, _claims(published.base_url, aud="x")),
        _sign(keys.rsa, _claims(published.base_url), kid="unknown"),
    ]
    for token in bad:
        with pytest.raises(AuthenticationError):
            await auth.authenticate(token)
    refused = [r for r in caplog.records if r.getMessage() == "oidc_token_refused"]
    assert len(refused) == len(bad)
    for record in caplog.records:
        rendered = repr(record.__dict__)
        for token in bad:
            for part in token.split("."):
                assert part not in rendered


async def test_concurrent_cold_start_fetches_once(
    auth: OidcAuthenticator, keys: Keys, published: IdpServer
) -> None:
    token = _sign(keys.rsa, _claims(published.base_url))
    principals = await asyncio.gather(*(auth.authenticate(token) for _ in range(20)))
    assert {p.id for p in principals} == {"oidc:corp:user-42"}
    assert published.state.count("/jwks.json") == 1
