"""Where budget spend is counted: per principal, per UTC day and month.

Spend is counted in integer nano-dollars (1e-9 USD), so sums are exact.
``MemorySpendStore`` serves one process; ``RedisSpendStore`` serves replicas (keys
``{prefix}budget:{<principal id>}:day:YYYY-MM-DD`` and ``…:month:YYYY-MM`` updated
with INCRBY, expiring a day after their period). Redis errors become 503s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from airlock.errors import ServiceUnavailableError

__all__ = [
    "BudgetPeriod",
    "MemorySpendStore",
    "Period",
    "RedisSpendStore",
    "SpendStore",
    "periods_at",
    "to_nanos",
    "usd",
]

# The budget guard's logger: operators filter budget events under one name.
_log = logging.getLogger("airlock.access.budgets")

Period = Literal["day", "month"]

_NANOS_PER_USD = 1_000_000_000
_KEY_GRACE = timedelta(days=1)


def to_nanos(amount_usd: float) -> int:
    """USD → integer nano-dollars (rounded to nearest)."""
    return round(amount_usd * _NANOS_PER_USD)


def usd(nanos: int) -> float:
    return nanos / _NANOS_PER_USD


@dataclass(frozen=True, slots=True)
class BudgetPeriod:
    """One UTC budget period: ``[start, end)``; ``label`` names it in keys and logs."""

    period: Period
    start: datetime
    end: datetime
    label: str


def periods_at(now: datetime) -> tuple[BudgetPeriod, BudgetPeriod]:
    """The UTC day and month containing ``now`` (which must be timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("budget clock must return timezone-aware datetimes")
    now = now.astimezone(UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    return (
        BudgetPeriod(
            "day", day_start, day_start + timedelta(days=1), day_start.strftime("%Y-%m-%d")
        ),
        BudgetPeriod("month", month_start, next_month, month_start.strftime("%Y-%m")),
    )


class SpendStore(Protocol):
    """Where spend counters live. Amounts are nano-dollars."""

    async def spent(self, principal_id: str, period: BudgetPeriod) -> int | None:
        """The counter, or None when it does not exist (never seeded nor added to)."""
        ...

    async def seed(self, principal_id: str, period: BudgetPeriod, nanos: int) -> None:
        """Create the counter with ``nanos`` unless it already exists."""
        ...

    async def add(self, principal_id: str, period: BudgetPeriod, nanos: int) -> int:
        """Add to the counter (creating it at 0) and return the new total."""
        ...

    async def add_if_exists(
        self, principal_id: str, period: BudgetPeriod, nanos: int
    ) -> int | None:
        """Add to the counter only if it exists: the new total, or None when it does not."""
        ...

    async def claim_alert(self, principal_id: str, period: BudgetPeriod) -> bool:
        """True exactly once per principal and period (across replicas for Redis)."""
        ...


class MemorySpendStore:
    """Counters in a dict for one process; counters of past periods are dropped."""

    def __init__(self) -> None:
        self._spend: dict[tuple[str, Period, str], tuple[int, datetime]] = {}
        self._alerts: set[tuple[str, Period, str]] = set()
        self._current: dict[Period, str] = {}

    def _roll(self, period: BudgetPeriod) -> None:
        # A new period label: forget the old period's counters and alerts.
        if self._current.get(period.period) == period.label:
            return
        self._current[period.period] = period.label
        stale = [
            k
            for k, (_, end) in self._spend.items()
            if k[1] == period.period and end <= period.start
        ]
        for key in stale:
            del self._spend[key]
        self._alerts = {a for a in self._alerts if a[1] != period.period or a[2] == period.label}

    async def spent(self, principal_id: str, period: BudgetPeriod) -> int | None:
        self._roll(period)
        entry = self._spend.get((principal_id, period.period, period.label))
        return None if entry is None else entry[0]

    async def seed(self, principal_id: str, period: BudgetPeriod, nanos: int) -> None:
        self._roll(period)
        self._spend.setdefault((principal_id, period.period, period.label), (nanos, period.end))

    async def add(self, principal_id: str, period: BudgetPeriod, nanos: int) -> int:
        self._roll(period)
        key = (principal_id, period.period, period.label)
        total = self._spend.get(key, (0, period.end))[0] + nanos
        self._spend[key] = (total, period.end)
        return total

    async def add_if_exists(
        self, principal_id: str, period: BudgetPeriod, nanos: int
    ) -> int | None:
        self._roll(period)
        key = (principal_id, period.period, period.label)
        entry = self._spend.get(key)
        if entry is None:
            return None
        total = entry[0] + nanos
        self._spend[key] = (total, period.end)
        return total

    async def claim_alert(self, principal_id: str, period: BudgetPeriod) -> bool:
        key = (principal_id, period.period, period.label)
        if key in self._alerts:
            return False
        self._alerts.add(key)
        return True

    def __len__(self) -> int:
        return len(self._spend)


# INCRBY, and give a new counter its period-end expiry in the same atomic step.
_ADD = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return total
"""

# INCRBY only if the counter exists (false becomes None): re-applying lost spend to a
# counter the store has lost would count it twice once the counter is seeded again.
_ADD_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


class RedisSpendStore:
    """Counters in Redis shared by replicas; Redis errors become 503s."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "airlock:") -> None:
        self._client = client
        self._prefix = prefix
        self._add = client.register_script(_ADD)
        self._add_if_exists = client.register_script(_ADD_IF_EXISTS)

    def key_for(self, principal_id: str, period: BudgetPeriod) -> str:
        return f"{self._prefix}budget:{{{principal_id}}}:{period.period}:{period.label}"

    def alert_key_for(self, principal_id: str, period: BudgetPeriod) -> str:
        return f"{self._prefix}budget-alert:{{{principal_id}}}:{period.period}:{period.label}"

    @staticmethod
    def _expire_at(period: BudgetPeriod) -> int:
        return int((period.end + _KEY_GRACE).timestamp())

    async def spent(self, principal_id: str, period: BudgetPeriod) -> int | None:
        try:
            raw = await self._client.get(self.key_for(principal_id, period))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        return None if raw is None else int(raw)

    async def seed(self, principal_id: str, period: BudgetPeriod, nanos: int) -> None:
        try:
            await self._client.set(
                self.key_for(principal_id, period), nanos, nx=True, exat=self._expire_at(period)
            )
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None

    async def add(self, principal_id: str, period: BudgetPeriod, nanos: int) -> int:
        try:
            total = await self._add(
                keys=[self.key_for(principal_id, period)], args=[nanos, self._expire_at(period)]
            )
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        return int(total)

    async def add_if_exists(
        self, principal_id: str, period: BudgetPeriod, nanos: int
    ) -> int | None:
        try:
            total = await self._add_if_exists(
                keys=[self.key_for(principal_id, period)], args=[nanos]
            )
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        return None if total is None else int(total)

    async def claim_alert(self, principal_id: str, period: BudgetPeriod) -> bool:
        try:
            claimed = await self._client.set(
                self.alert_key_for(principal_id, period),
                1,
                nx=True,
                exat=self._expire_at(period),
            )
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        return bool(claimed)


def _unavailable(exc: Exception) -> ServiceUnavailableError:
    _log.warning("budget_store_unavailable", extra={"error_type": type(exc).__name__})
    return ServiceUnavailableError("budget store is unavailable; try again later")
