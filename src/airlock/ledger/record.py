"""RequestRecord: the metadata of one request, and nothing a caller wrote.

The record feeds both the usage ledger (one SQL row) and the audit trail (one
hash-chained entry). Every string field is checked against a fixed vocabulary or a
strict pattern in ``__post_init__``; a failed check names the field and never echoes
the rejected value, because the value may be request content (invariant 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from re import Pattern
from types import MappingProxyType
from typing import Any

from airlock.errors import AirlockError
from airlock.ledger._vocab import (
    ENDPOINTS,
    ENTITY_TYPE_PATTERN,
    ERROR_TYPES,
    FINISH_REASONS,
    ID_PATTERN,
    KEY_KINDS,
    PROVIDER_PATTERN,
    REGION_PATTERN,
    ROUTE_REASONS,
    TIERS,
)

__all__ = ["RecordValidationError", "RequestRecord", "error_type_of"]

_MAX_COUNT = 10**9


class RecordValidationError(ValueError):
    """A record field is invalid. ``field`` names it; the value is never included."""

    def __init__(self, field_name: str, expected: str) -> None:
        super().__init__(f"invalid RequestRecord field {field_name!r}: expected {expected}")
        self.field = field_name


def _check_pattern(name: str, value: object, pattern: Pattern[str], optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise RecordValidationError(name, f"a string matching {pattern.pattern}")


def _check_member(name: str, value: object, allowed: frozenset[str], optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or value not in allowed:
        raise RecordValidationError(name, "one of " + ", ".join(sorted(allowed)))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    # bool is an int subclass; True is not a token count.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecordValidationError(name, f"an integer in [{low}, {high}]")


def _check_float(name: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise RecordValidationError(name, "a finite number >= 0")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise RecordValidationError(name, "a bool")


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """Metadata of one request. Construct it once, in the meter stage."""

    request_id: str
    timestamp: datetime
    principal_id: str
    tenant: str
    key_kind: str
    endpoint: str
    requested_model: str
    served_model: str | None
    deployment: str | None
    provider: str | None
    region: str | None
    tier: str | None
    route_reason: str
    sensitive: bool
    entity_counts: Mapping[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    finish_reason: str | None = None
    error_type: str | None = None
    stream: bool = False

    def __post_init__(self) -> None:
        for name in ("request_id", "principal_id", "tenant", "requested_model"):
            _check_pattern(name, getattr(self, name), ID_PATTERN, optional=False)
        for name in ("served_model", "deployment"):
            _check_pattern(name, getattr(self, name), ID_PATTERN, optional=True)
        _check_pattern("provider", self.provider, PROVIDER_PATTERN, optional=True)
        _check_pattern("region", self.region, REGION_PATTERN, optional=True)
        _check_member("key_kind", self.key_kind, KEY_KINDS, optional=False)
        _check_member("endpoint", self.endpoint, ENDPOINTS, optional=False)
        _check_member("tier", self.tier, TIERS, optional=True)
        _check_member("route_reason", self.route_reason, ROUTE_REASONS, optional=False)
        _check_member("finish_reason", self.finish_reason, FINISH_REASONS, optional=True)
        _check_member("error_type", self.error_type, ERROR_TYPES, optional=True)
        if not isinstance(self.timestamp, datetime) or self.timestamp.utcoffset() is None:
            raise RecordValidationError("timestamp", "a timezone-aware datetime")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))
        _check_bool("sensitive", self.sensitive)
        _check_bool("stream", self.stream)
        _check_int("prompt_tokens", self.prompt_tokens, 0, _MAX_COUNT)
        _check_int("completion_tokens", self.completion_tokens, 0, _MAX_COUNT)
        _check_int("status", self.status, 100, 599)
        for name in ("cost_usd", "baseline_cost_usd", "latency_ms"):
            _check_float(name, getattr(self, name))
        _check_float("ttft_ms", self.ttft_ms, optional=True)
        object.__setattr__(self, "entity_counts", _checked_counts(self.entity_counts))

    def to_json_dict(self) -> dict[str, Any]:
        """The record as JSON-compatible values (timestamp in ISO 8601, UTC)."""
        return {
            "request_id": self.request_id,
            "timestamp": self.timestamp.isoformat(),
            "principal_id": self.principal_id,
            "tenant": self.tenant,
            "key_kind": self.key_kind,
            "endpoint": self.endpoint,
            "requested_model": self.requested_model,
            "served_model": self.served_model,
            "deployment": self.deployment,
            "provider": self.provider,
            "region": self.region,
            "tier": self.tier,
            "route_reason": self.route_reason,
            "sensitive": self.sensitive,
            "entity_counts": dict(self.entity_counts),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": float(self.cost_usd),
            "baseline_cost_usd": float(self.baseline_cost_usd),
            "latency_ms": float(self.latency_ms),
            "ttft_ms": None if self.ttft_ms is None else float(self.ttft_ms),
            "status": self.status,
            "finish_reason": self.finish_reason,
            "error_type": self.error_type,
            "stream": self.stream,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> RequestRecord:
        """Inverse of :meth:`to_json_dict`; validates like the constructor."""
        values = dict(data)
        stamp = values.get("timestamp")
        if not isinstance(stamp, str):
            raise RecordValidationError("timestamp", "an ISO 8601 string")
        try:
            values["timestamp"] = datetime.fromisoformat(stamp)
        except ValueError:
            raise RecordValidationError("timestamp", "an ISO 8601 string") from None
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise RecordValidationError(sorted(unknown)[0], "no such field")
        return cls(**values)


def _checked_counts(counts: object) -> Mapping[str, int]:
    if not isinstance(counts, Mapping):
        raise RecordValidationError("entity_counts", "a mapping of entity type to count")
    clean: dict[str, int] = {}
    for key in sorted(counts, key=str):
        if not isinstance(key, str) or ENTITY_TYPE_PATTERN.fullmatch(key) is None:
            raise RecordValidationError(
                "entity_counts", f"keys matching {ENTITY_TYPE_PATTERN.pattern}"
            )
        _check_int("entity_counts", counts[key], 1, _MAX_COUNT)
        clean[key] = counts[key]
    return MappingProxyType(clean)


def error_type_of(exc: BaseException) -> str:
    """The short ``error_type`` code to record for an exception."""
    if isinstance(exc, AirlockError):
        if exc.code in ERROR_TYPES:
            return str(exc.code)
        if type(exc).default_code in ERROR_TYPES:  # a custom code on a known class
            return str(type(exc).default_code)
        if exc.error_type in ERROR_TYPES:
            return exc.error_type
    return "server_error"
