"""Per-principal rate limits (requests and tokens per minute) as token buckets.

``MemoryRateLimiter`` for a single process, ``RedisRateLimiter`` for replicas sharing
one Redis. Both implement ``RateLimiter``: ``acquire`` before the upstream call,
``reconcile`` with the real token count afterwards.
"""

from airlock.access.limits._types import (
    RateLimiter,
    Reservation,
    TokensRateLimitError,
    format_reset,
)
from airlock.access.limits.memory import MemoryRateLimiter
from airlock.access.limits.redis_backend import RedisRateLimiter

__all__ = [
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "Reservation",
    "TokensRateLimitError",
    "format_reset",
]
