"""The signing keys of one issuer: fetched over HTTP, cached, refreshed with care.

Refreshes happen when the cache is older than its TTL, or when a token names a key id
the cache does not know (the issuer rotated its keys). Every fetch attempt counts
against ``min_refresh_seconds``, so a flood of tokens with forged key ids causes at
most one request to the identity provider per interval. If a refresh fails, the keys
already known stay in use; with no keys at all, authentication answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from airlock.errors import AuthenticationError, ServiceUnavailableError

__all__ = ["JwksCache", "PublicKey", "SigningKey", "parse_jwks"]

_log = logging.getLogger(__name__)

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

_MIN_RSA_BITS = 2048
_MAX_DOCUMENT_BYTES = 1 << 20
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public verification key from a JWKS document."""

    kid: str | None
    declared_alg: str | None
    key: PublicKey

    def accepts(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be verified with this key."""
        if self.declared_alg is not None and self.declared_alg != alg:
            return False
        if alg.startswith(("RS", "PS")):
            return isinstance(self.key, rsa.RSAPublicKey)
        if alg in _EC_CURVES:
            return (
                isinstance(self.key, ec.EllipticCurvePublicKey)
                and self.key.curve.name == _EC_CURVES[alg]
            )
        if alg == "EdDSA":
            return isinstance(self.key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
        return False


def _public(key: Any) -> PublicKey:
    # A JWKS that (wrongly) publishes private parts is still usable for verification.
    if isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        key = key.public_key()
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    raise InvalidKeyError("unsupported key object")


def _parse_key(jwk: dict[str, Any]) -> SigningKey | None:
    """A verification key, or None for keys that must not or cannot be used."""
    if jwk.get("use", "sig") != "sig":
        return None
    kty = jwk.get("kty")
    # Symmetric ("oct") keys are never accepted: tokens are verified with public keys only.
    loaders: dict[str, Callable[[dict[str, Any]], Any]] = {
        "RSA": RSAAlgorithm.from_jwk,
        "EC": ECAlgorithm.from_jwk,
        "OKP": OKPAlgorithm.from_jwk,
    }
    loader = loaders.get(kty) if isinstance(kty, str) else None
    if loader is None:
        return None
    key = _public(loader(jwk))
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        return None
    kid = jwk.get("kid")
    alg = jwk.get("alg")
    return SigningKey(
        kid=kid if isinstance(kid, str) else None,
        declared_alg=alg if isinstance(alg, str) else None,
        key=key,
    )


def parse_jwks(document: Any) -> list[SigningKey]:
    """The usable keys of a JWKS document; malformed entries are skipped and counted."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: list[SigningKey] = []
    skipped = 0
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            skipped += 1
            continue
        try:
            parsed = _parse_key(entry)
        except (InvalidKeyError, ValueError, TypeError, KeyError):
            skipped += 1
            continue
        if parsed is None:
            skipped += 1
        else:
            keys.append(parsed)
    if skipped:
        _log.info("jwks_keys_skipped", extra={"skipped_keys": skipped})
    return keys


class JwksCache:
    """Signing keys of one issuer, fetched with an injected ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        alias: str,
        jwks_url: str | None,
        discovery_url: str | None,
        check_url: Callable[[str], None],
        ttl_seconds: float = 600.0,
        min_refresh_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if jwks_url is None and discovery_url is None:
            raise ValueError("either jwks_url or discovery_url is required")
        self._http = http
        self._issuer = issuer
        self._alias = alias
        self._jwks_url = jwks_url
        self._discovery_url = discovery_url
        self._check_url = check_url
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: list[SigningKey] | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._fetches = 0

    @property
    def fetch_count(self) -> int:
        """How many times the JWKS was requested (for metrics and tests)."""
        return self._fetches

    async def key_for(self, kid: str | None, alg: str) -> SigningKey:
        """The key that verifies a token with header ``kid``/``alg``.

        Raises AuthenticationError when no such key exists, ServiceUnavailableError when
        the issuer's keys could never be fetched.
        """
        now = self._clock()
        if self._keys is None or (
            self._fetched_at is not None and now - self._fetched_at >= self._ttl
        ):
            await self._refresh()
        key = self._find(kid, alg)
        if key is None and kid is not None:
            # Unknown key id: the issuer may have rotated keys since the last fetch.
            await self._refresh()
            key = self._find(kid, alg)
        if key is None:
            if kid is None:
                raise AuthenticationError(
                    "token has no key id (kid) and the issuer has no single matching key"
                )
            raise AuthenticationError("token signing key is not known to the issuer")
        if not key.accepts(alg):
            raise AuthenticationError("token algorithm does not match its signing key")
        return key

    def _find(self, kid: str | None, alg: str) -> SigningKey | None:
        keys = self._keys or []
        if kid is not None:
            return next((k for k in keys if k.kid == kid), None)
        matching = [k for k in keys if k.accepts(alg)]
        return matching[0] if len(matching) == 1 else None

    async def _refresh(self) -> None:
        decided_at = self._attempted_at
        async with self._lock:
            if self._attempted_at != decided_at:
                return  # another task refreshed while this one waited
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                if self._keys is None:
                    raise ServiceUnavailableError("identity provider signing keys are unavailable")
                return
            self._attempted_at = now
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                _log.warning(
                    "jwks_fetch_failed",
                    extra={"issuer_alias": self._alias, "error_type": type(exc).__name__},
                )
                if self._keys is None:
                    raise ServiceUnavailableError(
                        "identity provider signing keys are unavailable"
                    ) from None
                return
            self._keys = keys
            self._fetched_at = now

    async def _get_json(self, url: str) -> Any:
        self._fetches += 1
        response = await self._http.get(
            url, timeout=self._timeout, headers={"Accept": "application/json"}
        )
        response.raise_for_status()
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        return response.json()

    async def _fetch(self) -> list[SigningKey]:
        url = self._jwks_url
        if url is None:
            assert self._discovery_url is not None
            document = await self._get_json(self._discovery_url)
            if not isinstance(document, dict) or document.get("issuer") != self._issuer:
                # OIDC Discovery 1.0 §4.3: the document must name the same issuer.
                raise ValueError("discovery document names a different issuer")
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("discovery document has no jwks_uri")
            self._check_url(jwks_uri)
            url = jwks_uri
        return parse_jwks(await self._get_json(url))
