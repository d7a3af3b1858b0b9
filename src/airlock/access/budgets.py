"""Spend budgets per principal per UTC day and month, with a soft alert threshold.

``BudgetGuard.check`` runs before the upstream call and refuses (429
``insufficient_quota``) a request whose estimated cost would take the period's spend
above a hard budget; ``BudgetGuard.record`` adds the real cost afterwards.

Spend is counted in integer nano-dollars, so the edge "spend + cost == budget" is
allowed while one nano-dollar more is not. Checks and records are separate steps:
requests of one principal that run concurrently may together overshoot a budget by at
most their own estimated costs.

The counters live in a ``SpendStore`` (:mod:`airlock.access.spend_store`). When a
period's counter does not exist (a new period, or the store lost it), it is seeded from
``load_spend(principal_id, period_start)`` (e.g. the usage ledger), so a restart does
not forget what was already spent.

Spend that ``record`` cannot add while the store is unreachable is kept in memory per
counter (at most ``pending_limit`` counters) and re-applied at the start of a later
``check`` or ``record`` once the store answers again; while it does not, that is
tried at most once per ``retry_interval_s``. Pending spend of a period that has ended
is dropped: its counter no longer decides anything. When the counter no longer exists
at re-apply time (Redis restarted empty, or the key expired), the pending amount is
dropped instead of added: the next use seeds the counter from the ledger, whose rows
do not depend on the store and already hold that cost, so adding it too would count
it twice (without ``load_spend`` nothing seeds, so it is added). One window remains
across replicas: if another replica seeds the counter again before this one
re-applies, that amount is counted twice; the error is bounded by what was lost and
errs towards refusing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from airlock.access.principal import Principal
from airlock.access.spend_store import (
    BudgetPeriod,
    MemorySpendStore,
    Period,
    RedisSpendStore,
    SpendStore,
    periods_at,
    to_nanos,
    usd,
)
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

LoadSpend = Callable[[str, datetime], Awaitable[float]]
_Key = tuple[str, Period, str]


@dataclass(slots=True)
class _Pending:
    """Spend not yet added to a counter because the store was unreachable."""

    period: BudgetPeriod
    nanos: int


def _log_pending(level: int, event: str, key: _Key, nanos: int, **extra: str) -> None:
    principal_id, period, label = key
    _log.log(
        level,
        event,
        extra={
            "principal_id": principal_id,
            "period": period,
            "period_start": label,
            "amount_usd": usd(nanos),
            **extra,
        },
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetGuard:
    """Hard budgets and soft alerts for principals, over a ``SpendStore``.

    ``soft_threshold``: fraction of a budget (0 < t ≤ 1) at which a
    ``budget_soft_threshold`` warning is logged, once per principal and period, with
    metadata only (principal id, period, percentage, budget).
    ``load_spend``: async callable giving the spend already recorded elsewhere (the
    ledger) since a period start; used for each counter that does not exist.
    ``fail_open``: when the store is unreachable, let ``check`` pass instead of 503.
    ``pending_limit``: how many counters may hold spend waiting for the store to come
    back (bounds memory during a long outage); ``retry_interval_s``: how often, at
    most, re-applying it is tried while the store stays unreachable.
    """

    def __init__(
        self,
        store: SpendStore,
        *,
        soft_threshold: float = 0.8,
        load_spend: LoadSpend | None = None,
        fail_open: bool = False,
        pending_limit: int = 4096,
        retry_interval_s: float = 5.0,
        now: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < soft_threshold <= 1:
            raise ValueError("soft_threshold must be in (0, 1]")
        if pending_limit < 0:
            raise ValueError("pending_limit must not be negative")
        if retry_interval_s < 0:
            raise ValueError("retry_interval_s must not be negative")
        self._store = store
        self._threshold = soft_threshold
        self._load_spend = load_spend
        self._fail_open = fail_open
        self._now = now
        self._monotonic = monotonic
        # Seedings in flight: concurrent requests of one principal on a cold counter
        # share one ledger query instead of each running it at the same moment.
        self._seeding: dict[_Key, asyncio.Task[None]] = {}
        # Spend the store did not take (it was unreachable), waiting to be re-applied.
        self._pending: dict[_Key, _Pending] = {}
        self._pending_limit = pending_limit
        self._pending_full_logged = False
        self._retry_interval = retry_interval_s
        self._retry_at = float("-inf")
        self._reapplying: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """How many counters hold spend not yet added to the store."""
        return len(self._pending)

    async def _spent(self, principal_id: str, period: BudgetPeriod) -> int:
        key = (principal_id, period.period, period.label)
        current = await self._store.spent(principal_id, period)
        if current is None and self._load_spend is not None:
            # The seed below comes from the ledger, which already holds any spend
            # pending here for this counter: adding that too would count it twice.
            self._drop_pending(key, "counter_missing")
            task = self._seeding.get(key)
            if task is None:
                task = asyncio.create_task(self._seed(principal_id, period))
                self._seeding[key] = task
                task.add_done_callback(functools.partial(self._seeded, key))
            # Shielded: a caller that goes away must not cancel what others await.
            await asyncio.shield(task)
            current = await self._store.spent(principal_id, period)
        return current or 0

    async def _seed(self, principal_id: str, period: BudgetPeriod) -> None:
        assert self._load_spend is not None
        seeded = await self._load_spend(principal_id, period.start)
        if seeded < 0:
            raise ValueError("load_spend returned a negative amount")
        await self._store.seed(principal_id, period, to_nanos(seeded))

    def _seeded(self, key: _Key, task: asyncio.Task[None]) -> None:
        self._seeding.pop(key, None)
        if not task.cancelled():
            # Marks a failure as retrieved even if every caller went away meanwhile;
            # the callers still awaiting it get the exception themselves.
            task.exception()

    def _keep_pending(self, principal_id: str, period: BudgetPeriod, nanos: int) -> bool:
        """Remember spend the store did not take; False when it had to be given up."""
        if nanos == 0:
            return True
        key = (principal_id, period.period, period.label)
        entry = self._pending.get(key)
        if entry is not None:
            entry.nanos += nanos
            return True
        if len(self._pending) >= self._pending_limit:
            if not self._pending_full_logged:
                self._pending_full_logged = True
                _log.error("budget_pending_full", extra={"pending_limit": self._pending_limit})
            return False
        self._pending[key] = _Pending(period, nanos)
        return True

    def _drop_pending(self, key: _Key, reason: str) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            _log_pending(
                logging.WARNING, "budget_pending_spend_dropped", key, entry.nanos, reason=reason
            )

    async def _reapply_pending(self) -> None:
        """Re-apply spend lost to a store outage, if any; at most one attempt per
        retry interval, and one at a time (other requests do not wait for it)."""
        if not self._pending or self._reapplying is not None:
            return
        now = self._monotonic()
        if now < self._retry_at:
            return
        self._retry_at = now + self._retry_interval
        task = asyncio.create_task(self._reapply())
        self._reapplying = task
        task.add_done_callback(self._reapplied)
        # Shielded: a caller going away mid-way must not leave an add half-known.
        await asyncio.shield(task)

    def _reapplied(self, task: asyncio.Task[None]) -> None:
        self._reapplying = None
        if not task.cancelled():
            task.exception()  # retrieved; the awaiting caller gets it itself

    async def _reapply(self) -> None:
        now = self._now()
        for key, entry in list(self._pending.items()):
            if self._pending.get(key) is not entry:
                continue  # dropped meanwhile (its counter was seeded)
            if entry.period.end <= now:
                self._drop_pending(key, "period_ended")
                continue
            principal_id = key[0]
            nanos = entry.nanos
            try:
                if self._load_spend is None:
                    total: int | None = await self._store.add(principal_id, entry.period, nanos)
                else:
                    total = await self._store.add_if_exists(principal_id, entry.period, nanos)
            except ServiceUnavailableError:
                return  # still unreachable: the rest waits for the next attempt
            # Spend kept for this counter while the add ran stays pending.
            if self._pending.get(key) is entry:
                entry.nanos -= nanos
                if entry.nanos <= 0:
                    del self._pending[key]
            if total is None:
                _log_pending(
                    logging.WARNING,
                    "budget_pending_spend_dropped",
                    key,
                    nanos,
                    reason="counter_missing",
                )
            else:
                _log_pending(logging.INFO, "budget_spend_reapplied", key, nanos)
        if not self._pending:
            self._pending_full_logged = False

    async def check(self, principal: Principal, estimated_cost_usd: float) -> None:
        """Raise InsufficientQuotaError if this request would exceed a hard budget."""
        if estimated_cost_usd < 0:
            raise ValueError("estimated_cost_usd must not be negative")
        await self._reapply_pending()
        periods = periods_at(self._now())
        budgets = self._budgets(principal, periods)
        if not budgets:
            return
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
        outage here is logged, not raised: the response has already been served; the
        cost is kept and re-applied when the store is back.
        """
        if cost_usd < 0:
            raise ValueError("cost_usd must not be negative")
        await self._reapply_pending()
        principal_id = principal if isinstance(principal, str) else principal.id
        nanos = to_nanos(cost_usd)
        periods = periods_at(self._now())
        budgets = (
            dict(self._budgets(principal, periods)) if isinstance(principal, Principal) else {}
        )
        for period in periods:
            try:
                await self._spent(principal_id, period)  # seed first, so history is kept
                total = await self._store.add(principal_id, period, nanos)
            except ServiceUnavailableError:
                kept = self._keep_pending(principal_id, period, nanos)
                _log.warning(
                    "budget_spend_not_recorded",
                    extra={
                        "principal_id": principal_id,
                        "period": period.period,
                        "kept_for_retry": kept,
                    },
                )
                continue
            if period in budgets:
                try:
                    await self._maybe_alert(principal_id, period, budgets[period], total)
                except ServiceUnavailableError:
                    # The spend is recorded; the alert is evaluated again at next check.
                    _log.warning(
                        "budget_alert_not_evaluated",
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
        f"(spent {usd(spent):.6f} USD, this request is estimated at {usd(wanted):.6f} USD); "
        f"it resets at {period.end.strftime('%Y-%m-%dT%H:%M:%SZ')}.",
        # The openai client retries 429s unless told not to; waiting will not help here.
        headers={"x-should-retry": "false"},
    )
