"""Usage reports: requests, tokens, cost and savings against the frontier baseline.

``baseline_cost_usd`` on each row is what the same tokens would have cost on the
configured frontier baseline model, so savings = baseline - actual cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from airlock.ledger.models import USAGE

__all__ = ["GROUP_BY", "GroupBy", "Report", "ReportRow", "build_report"]

GroupBy = Literal["key", "model", "tenant", "day"]
GROUP_BY: tuple[GroupBy, ...] = ("key", "model", "tenant", "day")
_USAGE = USAGE


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def savings_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    @property
    def savings_pct(self) -> float | None:
        """Savings as a percentage of the baseline; ``None`` when the baseline is 0."""
        if self.baseline_cost_usd <= 0:
            return None
        return 100.0 * self.savings_usd / self.baseline_cost_usd

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "baseline_cost_usd": self.baseline_cost_usd,
            "savings_usd": self.savings_usd,
            "savings_pct": self.savings_pct,
        }


@dataclass(frozen=True, slots=True)
class Report:
    by: GroupBy
    since: datetime | None
    until: datetime | None
    rows: tuple[ReportRow, ...]
    total: ReportRow

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "rows": [r.to_json_dict() for r in self.rows],
            "total": self.total.to_json_dict(),
        }


def _group_expr(by: GroupBy, dialect: str) -> ColumnElement[Any]:
    if by == "key":
        return _USAGE.c.principal_id
    if by == "tenant":
        return _USAGE.c.tenant
    if by == "model":
        return func.coalesce(_USAGE.c.served_model, _USAGE.c.requested_model)
    if by == "day":
        # Stored in UTC; PostgreSQL sessions run with timezone=UTC (see db.make_engine).
        if dialect == "postgresql":
            return func.to_char(_USAGE.c.ts, "YYYY-MM-DD")
        return func.substr(_USAGE.c.ts, 1, 10)
    raise ValueError("by must be one of: " + ", ".join(GROUP_BY))


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


async def build_report(
    engine: AsyncEngine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: GroupBy = "model",
    tenant: str | None = None,
) -> Report:
    """Aggregate usage rows with ``since <= ts < until`` (optionally one tenant)."""
    low, high = _utc(since, "since"), _utc(until, "until")
    group = _group_expr(by, engine.dialect.name).label("grp")
    measures = (
        func.count().label("requests"),
        func.coalesce(func.sum(_USAGE.c.prompt_tokens), 0).label("pt"),
        func.coalesce(func.sum(_USAGE.c.completion_tokens), 0).label("ct"),
        func.coalesce(func.sum(_USAGE.c.cost_usd), 0.0).label("cost"),
        func.coalesce(func.sum(_USAGE.c.baseline_cost_usd), 0.0).label("base"),
    )
    query = select(group, *measures).group_by(group).order_by(group)
    if low is not None:
        query = query.where(_USAGE.c.ts >= low)
    if high is not None:
        query = query.where(_USAGE.c.ts < high)
    if tenant is not None:
        query = query.where(_USAGE.c.tenant == tenant)
    async with engine.connect() as conn:
        result = await conn.execute(query)
        rows = tuple(
            ReportRow(
                str(r.grp), int(r.requests), int(r.pt), int(r.ct), float(r.cost), float(r.base)
            )
            for r in result
        )
    total = ReportRow(
        "total",
        sum(r.requests for r in rows),
        sum(r.prompt_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum(r.cost_usd for r in rows),
        sum(r.baseline_cost_usd for r in rows),
    )
    return Report(by, low, high, rows, total)
