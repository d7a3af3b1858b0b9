"""``airlock report`` and ``airlock db upgrade|downgrade|current``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from airlock.cli._options import DbUrlOpt, HomeOpt
from airlock.ledger.db import DatabaseUrlError, make_engine, resolve_db_url
from airlock.ledger.migrate import (
    current_revision,
    downgrade,
    head_revision,
    open_migrated_engine,
    upgrade,
)
from airlock.ledger.reports import GROUP_BY, Report, build_report
from airlock.ledger.timeparse import parse_when

__all__ = ["register"]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _url(db_url: str | None, home: Path | None) -> str:
    return resolve_db_url(db_url, home)


def _usd(value: float) -> str:
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def _render(report: Report, console: Console) -> None:
    title = f"Usage by {report.by}"
    if report.since or report.until:
        since = report.since.isoformat() if report.since else "…"
        until = report.until.isoformat() if report.until else "…"
        title += f"  ({since} → {until})"
    table = Table(title=title)
    table.add_column(report.by)
    for name in (
        "requests",
        "prompt tok",
        "completion tok",
        "cost",
        "baseline",
        "saved",
        "saved %",
    ):
        table.add_column(name, justify="right")
    for row in (*report.rows, report.total):
        pct = "—" if row.savings_pct is None else f"{row.savings_pct:.1f}%"
        table.add_row(
            row.group,
            f"{row.requests:,}",
            f"{row.prompt_tokens:,}",
            f"{row.completion_tokens:,}",
            _usd(row.cost_usd),
            _usd(row.baseline_cost_usd),
            _usd(row.savings_usd),
            pct,
            end_section=row is report.rows[-1] if report.rows else False,
            style="bold" if row is report.total else None,
        )
    console.print(table)


def report(
    since: Annotated[str | None, typer.Option(help="Start (YYYY-MM-DD or ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="End, exclusive.")] = None,
    by: Annotated[str, typer.Option(help="Group by: key, model, tenant or day.")] = "model",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Requests, tokens, cost and savings against the frontier baseline."""
    if by not in GROUP_BY:
        raise _fail("--by must be one of: " + ", ".join(GROUP_BY))
    try:
        low = parse_when(since, "--since") if since else None
        high = parse_when(until, "--until") if until else None
    except ValueError as exc:
        raise _fail(str(exc)) from None

    async def run() -> Report:
        engine = await open_migrated_engine(_url(db_url, home))
        try:
            return await build_report(engine, since=low, until=high, by=by, tenant=tenant)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except (DatabaseUrlError, SQLAlchemyError, OSError) as exc:
        raise _fail(f"cannot read the ledger ({type(exc).__name__}): {_short(exc)}") from None
    if as_json:
        typer.echo(json.dumps(result.to_json_dict(), indent=2))
    else:
        _render(result, Console())


def _short(exc: BaseException) -> str:
    # SQLAlchemy messages may quote SQL with bound values; keep the first line only.
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    url = _url(db_url, home)
    try:
        asyncio.run(upgrade(url, revision))
        now = asyncio.run(current_revision(url))
    except (DatabaseUrlError, SQLAlchemyError, OSError) as exc:
        raise _fail(f"upgrade failed ({type(exc).__name__}): {_short(exc)}") from None
    typer.echo(f"database at revision {now} (head is {head_revision()})")


def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, -1, or base.")] = "-1",
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Undo migrations down to REVISION (default: one step; 'base' drops all tables)."""
    url = _url(db_url, home)
    try:
        asyncio.run(downgrade(url, revision))
        now = asyncio.run(current_revision(url))
    except (DatabaseUrlError, SQLAlchemyError, OSError) as exc:
        raise _fail(f"downgrade failed ({type(exc).__name__}): {_short(exc)}") from None
    typer.echo(f"database at revision {now or 'base'}")


def db_current(home: HomeOpt = None, db_url: DbUrlOpt = None) -> None:
    """Print the database's current revision."""
    url = _url(db_url, home)

    async def run() -> str | None:
        engine = make_engine(url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    try:
        now = asyncio.run(run())
    except (DatabaseUrlError, SQLAlchemyError, OSError) as exc:
        raise _fail(f"cannot read the revision ({type(exc).__name__}): {_short(exc)}") from None
    typer.echo(now or "base")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    db = typer.Typer(help="Ledger database migrations.", no_args_is_help=True)
    db.command("upgrade")(db_upgrade)
    db.command("downgrade")(db_downgrade)
    db.command("current")(db_current)
    app.add_typer(db, name="db")
