"""``airlock audit verify|export|purge``."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TextIO

import typer
from sqlalchemy.exc import SQLAlchemyError

from airlock.access.spend_store import periods_at
from airlock.cli._options import DbUrlOpt, HomeOpt
from airlock.config import ConfigError, load_settings
from airlock.ledger.db import DatabaseUrlError, resolve_db_url, resolve_home
from airlock.ledger.migrate import open_migrated_engine
from airlock.ledger.timeparse import parse_when
from airlock.privacy.audit.chain import AuditTrail, PurgeResult
from airlock.privacy.audit.errors import AuditError
from airlock.privacy.audit.export import export_records
from airlock.privacy.audit.key import KEY_FILE_ENV, load_audit_key
from airlock.privacy.audit.mirror import JsonlMirror
from airlock.privacy.audit.verify import VerifyResult, verify_both, verify_db, verify_jsonl

__all__ = ["register"]

_DB_ERRORS = (DatabaseUrlError, SQLAlchemyError, OSError, AuditError)

KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar=KEY_FILE_ENV,
        help="The audit key file the gateway uses (default: audit.key in the data "
        "directory). Symlinks are followed; it is never created.",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def verify(
    source: Annotated[str, typer.Option(help="db, jsonl, or both (and compare).")] = "db",
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Exit 0 if the audit chain is intact; exit 1 naming the first bad record."""
    if source not in ("db", "jsonl", "both"):
        raise _fail("--source must be db, jsonl or both")
    home_path = resolve_home(home)
    try:
        key = load_audit_key(home_path, key_file, create=False)
    except AuditError as exc:
        raise _fail(str(exc)) from None
    mirror = JsonlMirror(home_path / "audit", key)

    async def run() -> VerifyResult:
        if source == "jsonl":
            return await asyncio.to_thread(verify_jsonl, mirror, key)
        engine = await open_migrated_engine(resolve_db_url(db_url, home_path))
        try:
            if source == "db":
                return await verify_db(engine, key)
            return await verify_both(engine, mirror, key)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except _DB_ERRORS as exc:
        raise _fail(f"cannot verify ({type(exc).__name__}): {_first_line(exc)}") from None
    typer.echo(result.describe())
    if not result.ok:
        raise typer.Exit(1)


def export(
    since: Annotated[str | None, typer.Option(help="Start (YYYY-MM-DD or ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="End, exclusive.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Write audit records in a time range for an auditor."""
    if fmt not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv")
    try:
        low = parse_when(since, "--since") if since else None
        high = parse_when(until, "--until") if until else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    url = resolve_db_url(db_url, home)

    async def run(out: TextIO) -> int:
        engine = await open_migrated_engine(url)
        try:
            return await export_records(
                engine,
                out,
                since=low,
                until=high,
                fmt="csv" if fmt == "csv" else "jsonl",
            )
        finally:
            await engine.dispose()

    try:
        if output is None:
            count = asyncio.run(run(sys.stdout))
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                count = asyncio.run(run(fh))
    except _DB_ERRORS as exc:
        raise _fail(f"export failed ({type(exc).__name__}): {_first_line(exc)}") from None
    typer.echo(f"exported {count} audit records", err=True)


def purge(
    before: Annotated[
        str | None, typer.Option(help="Remove records appended before this date/time (UTC).")
    ] = None,
    retention_days: Annotated[
        int | None, typer.Option(help="Remove records older than this many days.", min=1)
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="AIRLOCK_CONFIG",
            help="YAML config whose privacy.retention_days applies when neither "
            "--before nor --retention-days is given.",
        ),
    ] = None,
    keep_usage: Annotated[
        bool,
        typer.Option(
            "--keep-usage",
            help="Keep the usage-ledger rows (same metadata, kept for billing) that are "
            "otherwise removed with the records.",
        ),
    ] = False,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Remove old audit records and usage rows, keep the chain verifiable, and audit
    the purge."""
    if before is not None and retention_days is not None:
        raise _fail("give at most one of --before or --retention-days")
    if before is None and retention_days is None:
        try:
            retention_days = load_settings(config).app.privacy.retention_days
        except ConfigError as exc:
            raise _fail(str(exc)) from None
    try:
        cutoff = (
            parse_when(before, "--before")
            if before is not None
            else datetime.now(UTC) - timedelta(days=retention_days or 0)
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    usage_before = None if keep_usage else _usage_cutoff(cutoff, datetime.now(UTC))
    home_path = resolve_home(home)
    try:
        key = load_audit_key(home_path, key_file, create=False)
    except AuditError as exc:
        raise _fail(str(exc)) from None

    async def run() -> PurgeResult:
        engine = await open_migrated_engine(resolve_db_url(db_url, home_path))
        try:
            trail = AuditTrail(engine, key, mirror=JsonlMirror(home_path / "audit", key))
            return await trail.purge(cutoff, usage_before=usage_before)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except _DB_ERRORS as exc:
        raise _fail(f"purge failed ({type(exc).__name__}): {_first_line(exc)}") from None
    usage = (
        "usage rows kept"
        if usage_before is None
        else f"{result.usage_removed} usage rows before {usage_before.isoformat()} removed"
    )
    typer.echo(
        f"purged {result.removed} audit records before {cutoff.isoformat()}; {usage}; the "
        f"chain now starts at index {result.anchor_index}; purge recorded as index "
        f"{result.purge_record_index}"
    )


def _usage_cutoff(cutoff: datetime, now: datetime) -> datetime:
    """Usage rows go with the records, except this UTC month's: budgets are seeded from
    them after a restart, so they stay until the month ends."""
    _, month = periods_at(now)
    return min(cutoff.astimezone(UTC), month.start)


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
    audit.command("verify")(verify)
    audit.command("export")(export)
    audit.command("purge")(purge)
    app.add_typer(audit, name="audit")
