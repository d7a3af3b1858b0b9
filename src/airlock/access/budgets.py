"""Spend budgets per principal per UTC day and month, with a soft alert threshold.

``BudgetGuard.check`` runs before the upstream call and refuses (429
``insufficient_quota``) a request whose estimated cost would take the period's spend
above a hard budget; ``BudgetGuard.record`` adds the real cost afterwards.

Spend is counted in integer nano-dollars (1e-9 USD), so sums are exact and the edge
"spend + cost == budget" is allowed while one nano-dollar more is not. Checks and
records are separate steps: requests of one principal that run concurrently may
together overshoot a budget by at most their own estimated costs.

Stores: ``MemorySpendStore`` (one process) and ``RedisSpendStore`` (replicas; keys
``{prefix}budget:{<principal id>}:day:YYYY-MM-DD`` and ``…:month:YYYY-MM`` updated
with INCRBY, expiring a day after their period). When a period's counter does not
exist yet, it is seeded once from ``load_spend(principal_id, period_start)`` (e.g.
the usage ledger), so a restart does not forget what was already spent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from airlock.access.principal import Principal
from airlock.errors import InsufficientQuotaError, ServiceUnavailableError

__all__ = [
    "BudgetGuard",
    "BudgetPeriod",
    "LoadSpend",
    "MemorySpendStore",
    "Period",
    "RedisSpendStore",
    "SpendStore",
    "periods_at",
    "to_nanos",
]

_log = logging.getLogger(__name__)

Period = Literal["day", "month"]
LoadSpend = Callable[[str, datetime], Awaitable[float]]

_NANOS_PER_USD = 1_000_000_000
_KEY_GRACE = timedelta(days=1)


def to_nanos(usd: float) -> int:
    """USD → integer nano-dollars (rounded to nearest)."""
    return round(usd * _NANOS_PER_USD)


def _usd(nanos: int) -> float:
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


class RedisSpendStore:
    """Counters in Redis shared by replicas; Redis errors become 503s."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "airlock:") -> None:
        self._client = client
        self._prefix = prefix
        self._add = client.register_script(_ADD)

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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetGuard:
    """Hard budgets and soft alerts for principals, over a ``SpendStore``.

    ``soft_threshold``: fraction of a budget (0 < t ≤ 1) at which a
    ``budget_soft_threshold`` warning is logged, once per principal and period, with
    metadata only (principal id, period, percentage, budget).
    ``load_spend``: async callable giving the spend already recorded elsewhere (the
    ledger) since a period start; used once per counter that does not exist yet.
    ``fail_open``: when the store is unreachable, let ``check`` pass instead of 503.
    """

    def __init__(
        self,
        store: SpendStore,
        *,
        soft_threshold: float = 0.8,
        load_spend: LoadSpend | None = None,
        fail_open: bool = False,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not 0 < soft_threshold <= 1:
            raise ValueError("soft_threshold must be in (0, 1]")
        self._store = store
        self._threshold = soft_threshold
        self._load_spend = load_spend
        self._fail_open = fail_open
        self._now = now
        # Counters this process already made sure exist (seeded) in the store, for the
        # period labels in ``_ready_labels``; cleared when a new day begins.
        self._ready: set[tuple[str, Period, str]] = set()
        self._ready_labels: tuple[str, str] = ("", "")
        # Seedings in flight: concurrent requests of one principal on a cold counter
        # share one ledger query instead of each running it at the same moment.
        self._seeding: dict[tuple[str, Period, str], asyncio.Task[None]] = {}

    def _roll(self, periods: tuple[BudgetPeriod, BudgetPeriod]) -> None:
        labels = (periods[0].label, periods[1].label)
        if labels != self._ready_labels:
            self._ready = set()
            self._ready_labels = labels

    async def _spent(self, principal_id: str, period: BudgetPeriod) -> int:
        key = (principal_id, period.period, period.label)
        current = await self._store.spent(principal_id, period)
        if current is None and key not in self._ready and self._load_spend is not None:
            task = self._seeding.get(key)
            if task is None:
                task = asyncio.create_task(self._seed(principal_id, period))
                self._seeding[key] = task
                task.add_done_callback(functools.partial(self._seeded, key))
            # Shielded: a caller that goes away must not cancel what others await.
            await asyncio.shield(task)
            current = await self._store.spent(principal_id, period)
        self._ready.add(key)
        return current or 0

    async def _seed(self, principal_id: str, period: BudgetPeriod) -> None:
        assert self._load_spend is not None
        seeded = await self._load_spend(principal_id, period.start)
        if seeded < 0:
            raise ValueError("load_spend returned a negative amount")
        await self._store.seed(principal_id, period, to_nanos(seeded))

    def _seeded(self, key: tuple[str, Period, str], task: asyncio.Task[None]) -> None:
        self._seeding.pop(key, None)
        if not task.cancelled():
            # Marks a failure as retrieved even if every caller went away meanwhile;
            # the callers still awaiting it get the exception themselves.
            task.exception()

    async def check(self, principal: Principal, estimated_cost_usd: float) -> None:
        """Raise InsufficientQuotaError if this request would exceed a hard budget."""
        if estimated_cost_usd < 0:
            raise ValueError("estimated_cost_usd must not be negative")
        periods = periods_at(self._now())
        budgets = self._budgets(principal, periods)
        if not budgets:
            return
        self._roll(periods)
        wanted = to_nanos(estimated_cost_usd)
        for period, budget in budgets:
            try:
                spent = await self._spent(principal.id, period)
                if spent + wanted > to_nanos(budget):
                    raise _quota_error(period, budget, spent, wanted)
                await self._maybe_alert(principal.id, period, budget, spent)
            except ServiceUnavailableError:
                if self._fail_open:
                    return
                raise

    async def record(self, principal: Principal | str, cost_usd: float) -> None:
        """Add the real cost of a finished request to the day and month counters.

        Pass the Principal (not just its id) to have the soft alert evaluated at once;
        with an id only it is evaluated at the principal's next ``check``. A store
        outage here is logged, not raised: the response has already been served.
        """
        if cost_usd < 0:
            raise ValueError("cost_usd must not be negative")
        principal_id = principal if isinstance(principal, str) else principal.id
        nanos = to_nanos(cost_usd)
        periods = periods_at(self._now())
        self._roll(periods)
        budgets = (
            dict(self._budgets(principal, periods)) if isinstance(principal, Principal) else {}
        )
        for period in periods:
            try:
                await self._spent(principal_id, period)  # seed first, so history is kept
                total = await self._store.add(principal_id, period, nanos)
                if period in budgets:
                    await self._maybe_alert(principal_id, period, budgets[period], total)
            except ServiceUnavailableError:
                _log.warning(
                    "budget_spend_not_recorded",
                    extra={"principal_id": principal_id, "period": period.period},
                )

    def _budgets(
        self, principal: Principal, periods: tuple[BudgetPeriod, BudgetPeriod]
    ) -> list[tuple[BudgetPeriod, float]]:
        day, month = periods
        out: list[tuple[BudgetPeriod, float]] = []
        if principal.budget_usd_daily is not None:
            out.append((day, principal.budget_usd_daily))
        if principal.budget_usd_monthly is not None:
            out.append((month, principal.budget_usd_monthly))
        return out

    async def _maybe_alert(
        self, principal_id: str, period: BudgetPeriod, budget: float, spent: int
    ) -> None:
        limit = to_nanos(budget)
        if limit <= 0 or spent < self._threshold * limit:
            return
        if not await self._store.claim_alert(principal_id, period):
            return
        _log.warning(
            "budget_soft_threshold",
            extra={
                "principal_id": principal_id,
                "period": period.period,
                "period_start": period.label,
                "percent": round(100 * spent / limit, 1),
                "threshold_percent": round(100 * self._threshold, 1),
                "budget_usd": budget,
            },
        )


def _quota_error(
    period: BudgetPeriod, budget: float, spent: int, wanted: int
) -> InsufficientQuotaError:
    word = "daily" if period.period == "day" else "monthly"
    return InsufficientQuotaError(
        "You exceeded your current quota, please check your plan and billing details. "
        f"The {word} budget of {budget:.2f} USD would be exceeded "
        f"(spent {_usd(spent):.6f} USD, this request is estimated at {_usd(wanted):.6f} USD); "
        f"it resets at {period.end.strftime('%Y-%m-%dT%H:%M:%SZ')}.",
        # The openai client retries 429s unless told not to; waiting will not help here.
        headers={"x-should-retry": "false"},
    )
