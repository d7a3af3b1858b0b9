"""Bearer JWTs from configured OIDC issuers → Principal.

Order of checks, cheapest first: size and shape, header (algorithm), issuer, key
(from the issuer's JWKS, never from the token's own ``jwk``/``jku``/``x5u`` headers),
then signature and time/audience claims in PyJWT, then claim mapping. Error messages
name the failed check; they never contain the token or any claim value.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
from jwt import exceptions as jwt_errors

from airlock.access.jwks import JwksCache
from airlock.access.oidc_claims import map_claims
from airlock.access.oidc_config import OidcConfig, OidcIssuerConfig, check_url
from airlock.access.principal import Principal
from airlock.errors import AuthenticationError

__all__ = ["OidcAuthenticator", "looks_like_jwt"]

_log = logging.getLogger(__name__)

# A compact JWS: three base64url segments; the header segment is a JSON object, whose
# base64url encoding always begins with "eyJ" ('{"'). API keys (``alk_…``) have no dots.
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# PyJWT exception → what the caller is told. Most specific classes first.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "token has expired"),
    (jwt_errors.ImmatureSignatureError, "token is not yet valid"),
    (jwt_errors.InvalidAudienceError, "token audience not allowed"),
    (jwt_errors.InvalidIssuerError, "token issuer not allowed"),
    (jwt_errors.InvalidIssuedAtError, "token issued-at (iat) claim is invalid"),
    (jwt_errors.InvalidSignatureError, "token signature is invalid"),
    (jwt_errors.InvalidAlgorithmError, "token algorithm not allowed"),
    (jwt_errors.InvalidKeyError, "token signing key is not usable"),
    (jwt_errors.DecodeError, "token is malformed"),
)


def looks_like_jwt(token: str) -> bool:
    """Cheap shape test so the caller can route a bearer value to OIDC or API keys.

    True only for ``<header>.<payload>.<signature>`` in base64url with a JSON-object
    header; says nothing about validity.
    """
    return _JWT_SHAPE.fullmatch(token) is not None


def _segment(segment: str) -> dict[str, Any]:
    # The charset was checked by looks_like_jwt; PyJWT's own per-character check is slow,
    # so the unverified peek is done here and PyJWT parses the token once, verified.
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise AuthenticationError("token is malformed") from None
    if not isinstance(value, dict):
        raise AuthenticationError("token is malformed")
    return value


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT-shaped token, not yet verified (only to pick a key)."""
    header_segment, payload_segment, _ = token.split(".")
    return _segment(header_segment), _segment(payload_segment)


def _url_checker(allow_http: bool) -> Callable[[str], None]:
    def check(url: str) -> None:
        check_url(url, allow_http, "jwks_uri")

    return check


def _reason(exc: jwt_errors.PyJWTError) -> str:
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"token is missing the '{exc.claim}' claim"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "token is invalid"


class OidcAuthenticator:
    """Validates bearer JWTs against the configured issuers' keys and maps them to Principals.

    ``http`` is used only to fetch JWKS and discovery documents; the caller owns
    (and closes) it.
    """

    def __init__(
        self,
        config: OidcConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._issuers: dict[str, OidcIssuerConfig] = {i.issuer: i for i in config.issuers}
        self._keys: dict[str, JwksCache] = {
            i.issuer: JwksCache(
                http,
                issuer=i.issuer,
                alias=i.alias,
                jwks_url=i.jwks_url,
                discovery_url=i.discovery_url if i.discovery else None,
                check_url=_url_checker(i.allow_http),
                ttl_seconds=i.jwks_ttl_seconds,
                min_refresh_seconds=i.jwks_min_refresh_seconds,
                clock=clock,
            )
            for i in config.issuers
        }

    @property
    def enabled(self) -> bool:
        """Whether any issuer is configured (otherwise every JWT is refused)."""
        return bool(self._issuers)

    def jwks_fetch_count(self, issuer: str) -> int:
        """How many JWKS/discovery requests were made for ``issuer`` (metrics, tests)."""
        return self._keys[issuer].fetch_count

    async def verify(self, token: str) -> Principal | None:
        """``TokenVerifier`` form: None for a bearer value that is not a JWT at all."""
        if not looks_like_jwt(token):
            return None
        return await self.authenticate(token)

    async def authenticate(self, token: str) -> Principal:
        """The Principal for a valid token.

        Raises AuthenticationError (401) for any invalid token, PermissionDeniedError
        (403) for a valid token no rule grants, ServiceUnavailableError (503) when the
        issuer's keys cannot be fetched at all.
        """
        try:
            return await self._authenticate(token)
        except AuthenticationError as exc:
            _log.info("oidc_token_refused", extra={"reason": exc.message})
            raise

    async def _authenticate(self, token: str) -> Principal:
        if len(token) > self._config.max_token_bytes:
            raise AuthenticationError("token is too large")
        if not looks_like_jwt(token):
            raise AuthenticationError("token is not a JWT")
        header, unverified = _unverified_parts(token)

        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or (kid is not None and not isinstance(kid, str)):
            raise AuthenticationError("token header is malformed")
        if alg.lower() == "none":
            raise AuthenticationError("unsigned tokens (alg 'none') are not allowed")
        if alg.upper().startswith("HS"):
            raise AuthenticationError("HMAC-signed tokens are not allowed")

        issuer = self._issuer_of(unverified)
        if alg not in issuer.algorithms:
            raise AuthenticationError("token algorithm not allowed for this issuer")
        signing_key = await self._keys[issuer.issuer].key_for(kid, alg)

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=[alg],
                audience=issuer.audiences,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={
                    "require": ["exp", "iss", "aud", *issuer.required_claims],
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt_errors.PyJWTError as exc:
            raise AuthenticationError(_reason(exc)) from None
        return map_claims(issuer, claims)

    def _issuer_of(self, unverified: Mapping[str, Any]) -> OidcIssuerConfig:
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthenticationError("token is missing the 'iss' claim")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise AuthenticationError("token issuer not allowed")
        return issuer
