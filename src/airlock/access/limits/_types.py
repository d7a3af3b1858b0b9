"""What every rate limiter shares: the reservation, the interface, the 429 errors.

Semantics (both backends): two token buckets per principal, one for requests and
one for tokens. A bucket's capacity is the per-minute limit and it refills
continuously at ``limit / 60`` per second, so an idle caller may burst up to the full
minute's allowance and then proceeds at the steady rate. A request needs one request
token and ``estimated_tokens`` tokens; it takes from both buckets or from neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

from airlock.errors import RateLimitError

__all__ = [
    "LimitKind",
    "RateLimiter",
    "Reservation",
    "TokensRateLimitError",
    "format_reset",
    "rate_limit_error",
    "request_too_large_error",
    "validate_acquire",
]

LimitKind = Literal["requests", "tokens"]

# Float slack for "level >= need": refill arithmetic may land a hair below an integer.
EPSILON = 1e-9


class TokensRateLimitError(RateLimitError):
    """429 for the tokens-per-minute limit (OpenAI reports ``type: tokens``)."""

    error_type = "tokens"


def format_reset(seconds: float) -> str:
    """Duration in OpenAI's ``x-ratelimit-reset-*`` style: ``20ms``, ``1.5s``, ``6m0s``."""
    # Sub-microsecond slack: float noise must not round 1.000000000001 s up to 2 s.
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis < 1000:
        return f"{millis}ms"
    if millis < 60_000:
        return f"{millis / 1000:g}s"
    minutes, rest = divmod(math.ceil(millis / 1000), 60)
    return f"{minutes}m{rest}s"


@dataclass(slots=True)
class Reservation:
    """What ``acquire`` took; hand it back to ``reconcile`` once the real count is known."""

    principal_id: str
    rpm: int | None
    tpm: int | None
    estimated_tokens: int
    remaining_requests: int | None
    remaining_tokens: int | None
    reset_requests_seconds: float | None
    reset_tokens_seconds: float | None
    degraded: bool = False  # the shared store was unreachable and the limiter failed open
    settled: bool = field(default=False, compare=False)

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` response headers for the limits that apply."""
        out: dict[str, str] = {}
        if self.rpm is not None and self.remaining_requests is not None:
            out["x-ratelimit-limit-requests"] = str(self.rpm)
            out["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
            out["x-ratelimit-reset-requests"] = format_reset(self.reset_requests_seconds or 0.0)
        if self.tpm is not None and self.remaining_tokens is not None:
            out["x-ratelimit-limit-tokens"] = str(self.tpm)
            out["x-ratelimit-remaining-tokens"] = str(self.remaining_tokens)
            out["x-ratelimit-reset-tokens"] = format_reset(self.reset_tokens_seconds or 0.0)
        return out


class RateLimiter(Protocol):
    """Per-principal RPM/TPM limits, checked before the upstream call."""

    async def acquire(
        self, principal_id: str, rpm: int | None, tpm: int | None, estimated_tokens: int
    ) -> Reservation:
        """Take one request and ``estimated_tokens`` tokens, or raise RateLimitError (429)."""
        ...

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct the token bucket by ``actual_tokens - estimated_tokens`` (once)."""
        ...


def validate_acquire(rpm: int | None, tpm: int | None, estimated_tokens: int) -> None:
    if rpm is not None and rpm < 1:
        raise ValueError("rpm must be at least 1 (or None for no limit)")
    if tpm is not None and tpm < 1:
        raise ValueError("tpm must be at least 1 (or None for no limit)")
    if estimated_tokens < 0:
        raise ValueError("estimated_tokens must not be negative")


def request_too_large_error(tpm: int, requested: int) -> TokensRateLimitError:
    """The request alone exceeds the per-minute token limit: waiting cannot help."""
    return TokensRateLimitError(
        f"Request too large for tokens per minute (TPM): Limit {tpm}, Requested {requested}. "
        "The input or output tokens must be reduced in order to run successfully.",
        headers={"x-should-retry": "false"},
    )


def rate_limit_error(
    kind: LimitKind, *, limit: int, level: float, requested: int, wait_seconds: float
) -> RateLimitError:
    """The OpenAI-shaped 429 with ``Retry-After`` (whole seconds, at least 1)."""
    used = max(0, math.ceil(limit - level - EPSILON))
    retry_after = max(1, math.ceil(wait_seconds - EPSILON))
    label = "requests per minute (RPM)" if kind == "requests" else "tokens per minute (TPM)"
    message = (
        f"Rate limit reached for {label}: Limit {limit}, Used {used}, Requested {requested}. "
        f"Please try again in {format_reset(wait_seconds)}."
    )
    headers = {
        "retry-after": str(retry_after),
        "retry-after-ms": str(max(1, math.ceil(wait_seconds * 1000 - 1e-6))),
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(level + EPSILON))),
        f"x-ratelimit-reset-{kind}": format_reset(wait_seconds),
    }
    if kind == "tokens":
        return TokensRateLimitError(message, headers=headers)
    return RateLimitError(message, headers=headers)
