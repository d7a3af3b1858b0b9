"""The load test (slow tier): two replicas, 200 clients for 60 s, see bench/load_test.py.

One run (module fixture) is judged by several tests, so a failure names what broke.
``AIRLOCK_LOAD_DURATION`` shortens the run for a quick local look.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
import redis
from bench.load_test import CHECKS, LoadOptions, LoadReport, run_load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    # Setup included: start-up, 60 s of load, the ledger check and `audit verify`.
    pytest.mark.timeout(900),
]


def _reachable(opts: LoadOptions) -> None:
    try:
        with redis.Redis.from_url(opts.redis_url) as rds:
            rds.ping()
        asyncio.run(_ping_pg(opts.pg_url.replace("postgresql+asyncpg://", "postgresql://", 1)))
    except (OSError, redis.RedisError, asyncpg.PostgresError) as exc:
        message = f"Redis or PostgreSQL is unreachable ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


async def _ping_pg(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> LoadReport:
    opts = LoadOptions(
        duration=float(os.environ.get("AIRLOCK_LOAD_DURATION", "60")),
        clients=200,
        workdir=tmp_path_factory.mktemp("load"),
    )
    _reachable(opts)
    result = run_load(opts)
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line("\n" + result.summary())
    return result


def _assert(report: LoadReport, *check_ids: str) -> None:
    failed = [f"{CHECKS[c]}: {report.checks[c][1]}" for c in check_ids if not report.checks[c][0]]
    assert not failed, "\n".join(failed) + "\n\n" + report.summary()


def test_every_request_has_exactly_one_ledger_row_and_audit_record(report: LoadReport) -> None:
    assert report.statuses.get("200", 0) > 0
    assert (
        report.ledger_rows
        == report.statuses["200"]
        + sum(n for s, n in report.statuses.items() if s not in ("200", "429"))
        or report.checks["ledger"][0]
    )
    _assert(report, "ledger", "audit_records")


def test_the_chain_both_replicas_extended_verifies(report: LoadReport) -> None:
    _assert(report, "audit_verify")


def test_rate_limits_hold_across_replicas_within_one_percent(report: LoadReport) -> None:
    _assert(report, "exercised", "limits", "allowance", "unlimited")


def test_no_transport_errors_and_a_clean_shutdown(report: LoadReport) -> None:
    _assert(report, "transport", "shutdown", "log_errors")


def test_no_overload_errors(report: LoadReport) -> None:
    _assert(report, "statuses", "log_warnings")
