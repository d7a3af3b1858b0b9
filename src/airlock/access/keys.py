"""KeyStore: create, list, rotate and revoke API keys; authenticate a presented key.

Lookup is by the SHA-256 of the presented key (unique index), confirmed with
``hmac.compare_digest``. Successful lookups are cached for ``cache_ttl`` seconds
(default 5): a revoke or rotate in this process takes effect at once (the cache is
invalidated), one made by another replica within ``cache_ttl``. Expiry is checked on
every call, cached or not.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.access.keys_spec import (
    KEY_PREFIX,
    ApiKeyInfo,
    IssuedKey,
    KeySpec,
    display_prefix,
    generate_key,
    generate_key_id,
    hash_key,
    looks_like_key,
)
from airlock.access.principal import Principal, PrincipalKind
from airlock.errors import AuthenticationError, BadRequestError, NotFoundError
from airlock.ledger.db import as_utc
from airlock.ledger.models import API_KEYS

__all__ = [
    "KEY_PREFIX",
    "MASTER_PRINCIPAL_ID",
    "ApiKeyInfo",
    "IssuedKey",
    "KeySpec",
    "KeyStore",
]

MASTER_PRINCIPAL_ID = "master"
_T = API_KEYS
_INVALID = "Incorrect API key provided."


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _info(row: Any) -> ApiKeyInfo:
    spec = KeySpec(
        name=row.name,
        tenant=row.tenant,
        allowed_models=None if row.allowed_models is None else frozenset(row.allowed_models),
        allowed_regions=None if row.allowed_regions is None else frozenset(row.allowed_regions),
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd_daily=row.budget_usd_daily,
        budget_usd_monthly=row.budget_usd_monthly,
        expires_at=None if row.expires_at is None else as_utc(row.expires_at),
        privacy_policy=row.privacy_policy,
        is_admin=row.is_admin,
    )
    return ApiKeyInfo(
        id=row.id,
        kind=row.kind,
        key_prefix=row.key_prefix,
        spec=spec,
        created_at=as_utc(row.created_at),
        rotated_at=None if row.rotated_at is None else as_utc(row.rotated_at),
        revoked_at=None if row.revoked_at is None else as_utc(row.revoked_at),
    )


class KeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.engine = engine
        self.cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._clock = clock
        # key hash -> (info, monotonic time fetched)
        self._cache: dict[str, tuple[ApiKeyInfo, float]] = {}

    # -- management -------------------------------------------------------------

    async def create(self, spec: KeySpec, *, kind: PrincipalKind = "api_key") -> IssuedKey:
        """A new key; the returned ``IssuedKey.key`` is the only copy of the secret."""
        now = self._clock()
        if spec.expires_at is not None and spec.expires_at <= now:
            raise BadRequestError("invalid expires: the time is in the past", param="expires")
        key, key_id = generate_key(), generate_key_id()
        values = {
            "id": key_id,
            "kind": kind,
            "name": spec.name,
            "tenant": spec.tenant,
            "key_hash": hash_key(key),
            "key_prefix": display_prefix(key),
            "allowed_models": None if spec.allowed_models is None else sorted(spec.allowed_models),
            "allowed_regions": (
                None if spec.allowed_regions is None else sorted(spec.allowed_regions)
            ),
            "rpm": spec.rpm,
            "tpm": spec.tpm,
            "budget_usd_daily": spec.budget_usd_daily,
            "budget_usd_monthly": spec.budget_usd_monthly,
            "privacy_policy": spec.privacy_policy,
            "is_admin": spec.is_admin,
            "expires_at": spec.expires_at,
            "created_at": now,
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(_T), [values])
        return IssuedKey(key, await self.get(key_id))

    async def get(self, key_id: str) -> ApiKeyInfo:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(_T).where(_T.c.id == key_id))).one_or_none()
        if row is None:
            raise NotFoundError(f"no API key with id '{_safe_id(key_id)}'", param="id")
        return _info(row)

    async def list(
        self, *, tenant: str | None = None, include_revoked: bool = True
    ) -> list[ApiKeyInfo]:
        query = select(_T).order_by(_T.c.created_at, _T.c.id)
        if tenant is not None:
            query = query.where(_T.c.tenant == tenant)
        if not include_revoked:
            query = query.where(_T.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            return [_info(r) for r in await conn.execute(query)]

    async def rotate(self, key_id: str) -> IssuedKey:
        """A new secret for the same id and policy; the old secret stops working."""
        key = generate_key()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(_T)
                .where(_T.c.id == key_id, _T.c.revoked_at.is_(None))
                .values(
                    key_hash=hash_key(key), key_prefix=display_prefix(key), rotated_at=self._clock()
                )
            )
        if result.rowcount != 1:
            info = await self.get(key_id)  # raises NotFoundError for an unknown id
            raise BadRequestError(f"API key '{info.id}' has been revoked", param="id")
        self._forget(key_id)
        return IssuedKey(key, await self.get(key_id))

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key (idempotent: revoking twice keeps the first time)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_T)
                .where(_T.c.id == key_id, _T.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        info = await self.get(key_id)
        self._forget(key_id)
        return info

    # -- authentication ------------------------------------------------------------

    async def authenticate(self, presented: str | None) -> Principal:
        """The Principal of ``presented``, or AuthenticationError (401) for a missing,
        malformed, unknown, revoked or expired key. Messages never contain the key."""
        if not presented or not isinstance(presented, str):
            raise AuthenticationError("Missing API key: pass it as 'Authorization: Bearer KEY'.")
        principal = await self.verify_token(presented)
        if principal is None:
            raise AuthenticationError(_INVALID)
        return principal

    async def verify_token(self, token: str) -> Principal | None:
        """An ``access.authenticate.TokenVerifier``: ``None`` when ``token`` is not an
        API key at all (so OIDC may try it), AuthenticationError when it is one but is
        not valid."""
        if not looks_like_key(token):
            return None
        info = await self._lookup(hash_key(token))
        if info is None:
            raise AuthenticationError(_INVALID)
        if info.revoked_at is not None:
            raise AuthenticationError(f"The API key {info.id} has been revoked.")
        if info.is_expired(self._clock()):
            raise AuthenticationError(f"The API key {info.id} has expired.")
        return info.to_principal()

    async def _lookup(self, digest: str) -> ApiKeyInfo | None:
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[1] < self.cache_ttl:
            return cached[0]
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(_T).where(_T.c.key_hash == digest))).one_or_none()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            self._cache.pop(digest, None)
            return None
        info = _info(row)
        if self.cache_ttl > 0:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))  # oldest insertion
            self._cache[digest] = (info, time.monotonic())
        return info

    def _forget(self, key_id: str) -> None:
        for digest in [d for d, (info, _) in self._cache.items() if info.id == key_id]:
            del self._cache[digest]


def _safe_id(key_id: str) -> str:
    # Ids are echoed in errors only when they look like ids.
    return key_id if len(key_id) <= 64 and key_id.replace("_", "").isalnum() else "…"
