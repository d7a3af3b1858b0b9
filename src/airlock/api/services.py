"""What the gateway needs besides its models, opened at start-up and closed at shutdown.

The ledger (database, audit trail, batched writer), the API key store, OIDC, rate
limits and budgets (in memory, or in Redis when replicas share state), the detector
and the complexity scorer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import redis.asyncio as aioredis

from airlock.access.authenticate import Authenticator, TokenVerifier
from airlock.access.budgets import BudgetGuard, MemorySpendStore, RedisSpendStore, SpendStore
from airlock.access.keys import KeyStore
from airlock.access.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from airlock.access.oidc import OidcAuthenticator
from airlock.api.inspect import Inspector
from airlock.api.meter import Meter, Observer
from airlock.config import ConfigError, Settings
from airlock.ledger.prices import ModelPrice, PriceCatalog, load_default_catalog
from airlock.ledger.runtime import Ledger, LedgerOptions, open_ledger
from airlock.privacy.detector import Detector
from airlock.providers.http import no_cookies
from airlock.routing.scorer import ComplexityScorer

__all__ = ["Services", "open_services", "price_catalog"]


@dataclass(frozen=True, slots=True)
class Services:
    ledger: Ledger
    keys: KeyStore
    authenticator: Authenticator
    limiter: RateLimiter
    budgets: BudgetGuard
    inspector: Inspector
    scorer: ComplexityScorer
    meter: Meter
    prices: PriceCatalog


def price_catalog(settings: Settings) -> tuple[PriceCatalog, ModelPrice]:
    """List prices overridden by the config's own prices, and the savings baseline."""
    catalog = load_default_catalog().with_prices(
        {m.name: (m.price.input_per_mtok, m.price.output_per_mtok) for m in settings.app.models}
    )
    name = settings.app.ledger.baseline_model
    if name not in catalog:
        raise ConfigError(
            f"ledger.baseline_model: no price is known for '{name}'; name a model from the "
            f"price catalog ({', '.join(sorted(catalog.models))}) or one declared with a price"
        )
    return catalog, catalog.get(name)


@asynccontextmanager
async def open_services(
    settings: Settings, master_digest: str, observers: tuple[Observer, ...] = ()
) -> AsyncIterator[Services]:
    access = settings.app.access
    catalog, baseline = price_catalog(settings)
    async with AsyncExitStack() as stack:
        ledger = await open_ledger(
            settings.env.database_url,
            home=settings.home,
            audit_key_file=settings.env.audit_key_file,
            options=LedgerOptions(
                flush_interval=settings.app.ledger.flush_interval_s,
                max_queue=settings.app.ledger.max_queue,
            ),
        )
        stack.push_async_callback(ledger.aclose)
        ledger.writer.start()
        keys = KeyStore(ledger.engine)
        verifiers: list[TokenVerifier] = [keys.verify_token]
        if access.oidc.issuers:
            # Used only to fetch the configured issuers' JWKS / discovery documents.
            http = httpx.AsyncClient(
                timeout=httpx.Timeout(5.0), follow_redirects=False, cookies=no_cookies()
            )
            stack.push_async_callback(http.aclose)
            verifiers.append(OidcAuthenticator(access.oidc, http).verify)

        limiter: RateLimiter
        store: SpendStore
        if access.redis_url:
            pool = aioredis.BlockingConnectionPool.from_url(
                access.redis_url,
                max_connections=access.redis_max_connections,
                timeout=access.redis_pool_timeout_s,
            )
            client = aioredis.Redis(connection_pool=pool)
            stack.push_async_callback(client.aclose)
            limiter = RedisRateLimiter(
                client, prefix=access.redis_prefix, fail_open=access.fail_open
            )
            store = RedisSpendStore(client, prefix=access.redis_prefix)
        else:
            limiter = MemoryRateLimiter()
            store = MemorySpendStore()
        budgets = BudgetGuard(
            store,
            soft_threshold=access.budget_soft_threshold,
            load_spend=ledger.spend_usd,
            fail_open=access.fail_open,
        )
        yield Services(
            ledger=ledger,
            keys=keys,
            authenticator=Authenticator(master_digest, tuple(verifiers)),
            limiter=limiter,
            budgets=budgets,
            inspector=Inspector(Detector(), settings.app.privacy.inspect_in_thread_chars),
            scorer=ComplexityScorer.load(),
            meter=Meter(
                writer=ledger.writer,
                prices=catalog,
                baseline=baseline,
                limiter=limiter,
                budgets=budgets,
                observers=observers,
            ),
            prices=catalog,
        )
