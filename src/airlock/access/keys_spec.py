"""API key material and policy: the key format, its hash, what a key may do.

Format: ``alk_`` + 40 base62 characters (238 bits from ``secrets``). Only the
SHA-256 of the whole key is stored, plus a non-secret display prefix (``alk_`` and
the first 8 characters, leaving 190 secret bits) so operators can tell keys apart.
A fast unsalted hash is enough here, unlike for passwords: with 190+ unguessable
bits there is nothing to brute-force or look up in a table, and a slow KDF would
only add latency to every request.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from airlock.access.principal import Principal, PrincipalKind, PrivacyPolicy
from airlock.errors import BadRequestError
from airlock.ledger._vocab import ID_PATTERN, REGION_PATTERN

__all__ = [
    "KEY_PREFIX",
    "ApiKeyInfo",
    "IssuedKey",
    "KeySpec",
    "display_prefix",
    "generate_key",
    "generate_key_id",
    "hash_key",
    "looks_like_key",
]

KEY_PREFIX = "alk_"
_ALPHABET = string.ascii_letters + string.digits
_SECRET_CHARS = 40
_DISPLAY_CHARS = 8
_KEY_RE = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9]{{{_SECRET_CHARS}}}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:@/-]{0,127}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_POLICIES: frozenset[str] = frozenset(get_args(PrivacyPolicy))


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_CHARS))


def generate_key_id() -> str:
    return "key_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + _DISPLAY_CHARS]


def looks_like_key(value: str) -> bool:
    return _KEY_RE.fullmatch(value) is not None


def _bad(param: str, expected: str) -> BadRequestError:
    # The value itself is never echoed: it may have been pasted from anywhere.
    return BadRequestError(f"invalid {param}: expected {expected}", param=param)


def _names(param: str, values: frozenset[str] | None, pattern: re.Pattern[str]) -> None:
    if values is None:
        return
    if not values:
        raise _bad(param, "at least one entry (omit it to allow all)")
    for value in values:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise _bad(param, f"entries matching {pattern.pattern}")


def _positive_int(param: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(param, "an integer >= 1")


def _money(param: str, value: float | None) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise _bad(param, "a number >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySpec:
    """What a new key may do. ``None`` means "no limit" (as in Principal)."""

    name: str
    tenant: str = "default"
    allowed_models: frozenset[str] | None = None
    allowed_regions: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_daily: float | None = None
    budget_usd_monthly: float | None = None
    expires_at: datetime | None = None
    privacy_policy: PrivacyPolicy | None = None
    is_admin: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or _NAME_RE.fullmatch(self.name) is None:
            raise _bad("name", f"1-128 characters matching {_NAME_RE.pattern}")
        if not isinstance(self.tenant, str) or ID_PATTERN.fullmatch(self.tenant) is None:
            raise _bad("tenant", f"an id matching {ID_PATTERN.pattern}")
        _names("models", self.allowed_models, _MODEL_RE)
        _names("regions", self.allowed_regions, REGION_PATTERN)
        _positive_int("rpm", self.rpm)
        _positive_int("tpm", self.tpm)
        _money("budget_usd_daily", self.budget_usd_daily)
        _money("budget_usd_monthly", self.budget_usd_monthly)
        if self.privacy_policy is not None and self.privacy_policy not in _POLICIES:
            raise _bad("privacy_policy", "one of " + ", ".join(sorted(_POLICIES)))
        if not isinstance(self.is_admin, bool):
            raise _bad("is_admin", "a bool")
        if self.expires_at is not None:
            if not isinstance(self.expires_at, datetime) or self.expires_at.utcoffset() is None:
                raise _bad("expires", "an ISO 8601 time with a timezone")
            object.__setattr__(self, "expires_at", self.expires_at.astimezone(UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyInfo:
    """A stored key's metadata and policy; never the secret."""

    id: str
    kind: PrincipalKind
    key_prefix: str
    spec: KeySpec
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.spec.expires_at is not None and now >= self.spec.expires_at

    def to_principal(self) -> Principal:
        s = self.spec
        return Principal(
            id=self.id,
            kind=self.kind,
            tenant=s.tenant,
            name=s.name,
            is_admin=s.is_admin,
            allowed_models=s.allowed_models,
            allowed_regions=s.allowed_regions,
            rpm=s.rpm,
            tpm=s.tpm,
            budget_usd_daily=s.budget_usd_daily,
            budget_usd_monthly=s.budget_usd_monthly,
            privacy_policy=s.privacy_policy,
        )

    def to_json_dict(self) -> dict[str, Any]:
        s = self.spec

        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "id": self.id,
            "kind": self.kind,
            "name": s.name,
            "tenant": s.tenant,
            "prefix": self.key_prefix,
            "models": None if s.allowed_models is None else sorted(s.allowed_models),
            "regions": None if s.allowed_regions is None else sorted(s.allowed_regions),
            "rpm": s.rpm,
            "tpm": s.tpm,
            "budget_usd_daily": s.budget_usd_daily,
            "budget_usd_monthly": s.budget_usd_monthly,
            "privacy_policy": s.privacy_policy,
            "is_admin": s.is_admin,
            "expires_at": iso(s.expires_at),
            "created_at": iso(self.created_at),
            "rotated_at": iso(self.rotated_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created or rotated: ``key`` is shown once and never stored."""

    key: str
    info: ApiKeyInfo

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"IssuedKey(key='{self.info.key_prefix}…', info={self.info!r})"
