"""Spend per principal from the ledger, for budgets (day and month, UTC).

The ledger lags the request path by the writer's flush interval, so a budget
check should add the spend it has seen since (see docs/ledger.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.models import USAGE

__all__ = ["Spend", "current_spend", "spend_usd"]

_USAGE = USAGE


@dataclass(frozen=True, slots=True)
class Spend:
    day_usd: float
    month_usd: float
    day_start: datetime
    month_start: datetime


async def spend_usd(
    engine: AsyncEngine,
    principal_id: str,
    since: datetime,
    until: datetime | None = None,
) -> float:
    """USD recorded for ``principal_id`` with ``since <= ts < until``."""
    if since.utcoffset() is None or (until is not None and until.utcoffset() is None):
        raise ValueError("since and until must be timezone-aware")
    query = select(func.coalesce(func.sum(_USAGE.c.cost_usd), 0.0)).where(
        _USAGE.c.principal_id == principal_id, _USAGE.c.ts >= since.astimezone(UTC)
    )
    if until is not None:
        query = query.where(_USAGE.c.ts < until.astimezone(UTC))
    async with engine.connect() as conn:
        return float((await conn.execute(query)).scalar_one())


async def current_spend(
    engine: AsyncEngine, principal_id: str, now: datetime | None = None
) -> Spend:
    """Spend in the current UTC day and UTC calendar month."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    day_query = func.coalesce(func.sum(_USAGE.c.cost_usd).filter(_USAGE.c.ts >= day_start), 0.0)
    month_query = func.coalesce(func.sum(_USAGE.c.cost_usd), 0.0)
    query = select(day_query, month_query).where(
        _USAGE.c.principal_id == principal_id, _USAGE.c.ts >= month_start
    )
    async with engine.connect() as conn:
        day, month = (await conn.execute(query)).one()
    return Spend(float(day), float(month), day_start, month_start)
