"""Token-bucket arithmetic shared by the in-memory backend (the Lua scripts mirror it)."""

from __future__ import annotations

from dataclasses import dataclass

from airlock.access.limits._types import EPSILON, Reservation, rate_limit_error
from airlock.errors import RateLimitError

__all__ = ["Levels", "full_in", "refilled", "reservation_or_error"]


def refilled(level: float, updated: float, capacity: int, now: float) -> float:
    """Bucket level at ``now``: refills at ``capacity / 60`` per second, up to capacity."""
    elapsed = max(0.0, now - updated)
    # Multiply before dividing so whole-second refills land on exact integers.
    return min(float(capacity), level + elapsed * capacity / 60.0)


def full_in(level: float, capacity: int) -> float:
    """Seconds until a bucket at ``level`` is full again."""
    return max(0.0, (capacity - level) * 60.0 / capacity)


@dataclass(frozen=True, slots=True)
class Levels:
    """Both bucket levels of a principal before this request (None: no such limit)."""

    requests: float | None
    tokens: float | None


def reservation_or_error(
    principal_id: str, rpm: int | None, tpm: int | None, want: int, levels: Levels
) -> Reservation | RateLimitError:
    """The reservation if both buckets can pay, else the 429 for the longer wait.

    ``levels`` are the levels *before* paying; the reservation reports them after.
    """
    refusals: list[tuple[float, RateLimitError]] = []
    if rpm is not None and levels.requests is not None and levels.requests + EPSILON < 1:
        wait = (1 - levels.requests) * 60.0 / rpm
        refusals.append(
            (
                wait,
                rate_limit_error(
                    "requests", limit=rpm, level=levels.requests, requested=1, wait_seconds=wait
                ),
            )
        )
    if tpm is not None and levels.tokens is not None and levels.tokens + EPSILON < want:
        wait = (want - levels.tokens) * 60.0 / tpm
        refusals.append(
            (
                wait,
                rate_limit_error(
                    "tokens", limit=tpm, level=levels.tokens, requested=want, wait_seconds=wait
                ),
            )
        )
    if refusals:
        # Retry-After must cover the slower bucket; on a tie, report requests.
        return max(refusals, key=lambda refusal: refusal[0])[1]
    after_r = None if levels.requests is None else levels.requests - 1
    after_t = None if levels.tokens is None else levels.tokens - want
    return Reservation(
        principal_id=principal_id,
        rpm=rpm,
        tpm=tpm,
        estimated_tokens=want,
        remaining_requests=None if after_r is None else max(0, int(after_r + EPSILON)),
        remaining_tokens=None if after_t is None else max(0, int(after_t + EPSILON)),
        reset_requests_seconds=None if after_r is None or rpm is None else full_in(after_r, rpm),
        reset_tokens_seconds=None if after_t is None or tpm is None else full_in(after_t, tpm),
    )
