"""The meter stage: one audit record and one ledger row per routed request.

Runs after the response has been sent (or the client went away): settles the rate
limit reservation with the real token count, adds the real cost to the caller's
budget counters, and hands a content-free ``RequestRecord`` to the batched ledger
writer, which hash-chains it into the audit trail in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from airlock.access.budgets import BudgetGuard
from airlock.access.limits import RateLimiter
from airlock.api.context import RequestContext
from airlock.errors import AirlockError
from airlock.ledger import ERROR_TYPES, FINISH_REASONS, ID_PATTERN, ROUTE_REASONS
from airlock.ledger.prices import ModelPrice, PriceCatalog, cost
from airlock.ledger.record import RecordValidationError, RequestRecord
from airlock.ledger.writer import LedgerWriter

__all__ = ["Meter", "record_of"]

_log = logging.getLogger("airlock.meter")
Observer = Callable[[RequestContext], None]


def _safe_id(value: str) -> str:
    """Ids go into the record as they are when they fit its pattern, else as a digest
    (an OIDC subject may hold characters the record does not accept)."""
    if ID_PATTERN.match(value):
        return value
    return "h:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _error_type(ctx: RequestContext) -> str | None:
    if ctx.error_type is None:
        return None
    if ctx.error_type in ERROR_TYPES:
        return ctx.error_type
    return "invalid_request_error" if 400 <= ctx.status < 500 else "server_error"


def record_of(
    ctx: RequestContext, prices: PriceCatalog, baseline: ModelPrice | None
) -> RequestRecord:
    """The audit/ledger record of a finished request: metadata only."""
    principal = ctx.principal
    assert principal is not None  # only routed requests are metered, after authentication
    served = ctx.served_model if ctx.deployment is not None else None
    price = prices.models.get(served) if served is not None else None
    spent = cost(price, ctx.prompt_tokens, ctx.completion_tokens) if price else 0.0
    base = cost(baseline, ctx.prompt_tokens, ctx.completion_tokens) if baseline else 0.0
    finish = ctx.finish_reason if ctx.finish_reason in FINISH_REASONS else None
    if finish is None and ctx.error_type == "client_disconnected":
        finish = "cancelled"
    return RequestRecord(
        request_id=ctx.request_id,
        timestamp=datetime.now(UTC),
        principal_id=_safe_id(principal.id),
        tenant=_safe_id(principal.tenant),
        key_kind=principal.kind,
        endpoint=ctx.path,
        requested_model=_safe_id(ctx.requested_model or "unknown"),
        served_model=served,
        deployment=ctx.deployment,
        provider=ctx.provider,
        region=ctx.region,
        tier=ctx.tier,
        route_reason=ctx.route_reason if ctx.route_reason in ROUTE_REASONS else "none",
        sensitive=ctx.sensitive,
        entity_counts=ctx.entity_counts,
        prompt_tokens=ctx.prompt_tokens,
        completion_tokens=ctx.completion_tokens,
        cost_usd=spent,
        baseline_cost_usd=base,
        latency_ms=ctx.elapsed_ms(),
        ttft_ms=ctx.ttft_ms(),
        status=ctx.status or 500,
        finish_reason=finish,
        error_type=_error_type(ctx),
        stream=ctx.stream,
    )


class Meter:
    def __init__(
        self,
        *,
        writer: LedgerWriter,
        prices: PriceCatalog,
        baseline: ModelPrice | None,
        limiter: RateLimiter,
        budgets: BudgetGuard,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        self._writer = writer
        self._prices = prices
        self._baseline = baseline
        self._limiter = limiter
        self._budgets = budgets
        self._observers = observers
        # Requests begun and not yet metered; shutdown waits for them (see ``drain``).
        self._open = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        """A request has started; ``finish`` must follow, whatever happens to it."""
        self._open += 1
        self._idle.clear()

    @property
    def unmetered(self) -> int:
        return self._open

    async def drain(self) -> None:
        """Wait until every begun request is metered, before the ledger closes.

        At shutdown the server cancels requests that outlived its grace period; their
        metering runs only after that, and must still reach the ledger (invariant 4).
        """
        await self._idle.wait()

    async def finish(self, ctx: RequestContext) -> None:
        """Settle limits and budgets and write the record. Never raises: the response
        is already out; failures are logged with metadata only."""
        try:
            await self._finish(ctx)
        finally:
            self._open -= 1
            if self._open <= 0:
                self._open = 0
                self._idle.set()

    async def _finish(self, ctx: RequestContext) -> None:
        for observe in self._observers:
            observe(ctx)
        if ctx.reservation is not None:
            try:
                await self._limiter.reconcile(
                    ctx.reservation, ctx.prompt_tokens + ctx.completion_tokens
                )
            except AirlockError as exc:
                _log.warning(
                    "rate_limit_not_reconciled",
                    extra={"request_id": ctx.request_id, "error": exc.error_type},
                )
        if not ctx.routed or ctx.principal is None:
            return
        try:
            record = record_of(ctx, self._prices, self._baseline)
        except RecordValidationError as exc:
            # Names the field only; a value that failed validation may be content.
            _log.error(
                "audit_record_invalid", extra={"request_id": ctx.request_id, "field": exc.field}
            )
            return
        principal = ctx.principal
        has_budget = (
            principal.budget_usd_daily is not None or principal.budget_usd_monthly is not None
        )
        # Without a budget, the ledger alone keeps the spend (a budget added later is
        # seeded from it); the counters are only for keys that have one.
        if record.cost_usd > 0 and has_budget:
            await self._budgets.record(principal, record.cost_usd)
        try:
            await self._writer.submit(record)
        except AirlockError as exc:
            _log.error(
                "audit_record_not_queued",
                extra={"request_id": ctx.request_id, "error": exc.error_type},
            )
