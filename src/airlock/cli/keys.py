"""``airlock keys create|list|show|rotate|revoke``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from airlock.access.keys import ApiKeyInfo, IssuedKey, KeySpec, KeyStore
from airlock.access.principal import PrivacyPolicy
from airlock.cli._options import DbUrlOpt, HomeOpt
from airlock.errors import AirlockError
from airlock.ledger.db import DatabaseUrlError, resolve_db_url
from airlock.ledger.migrate import open_migrated_engine
from airlock.ledger.timeparse import parse_when

__all__ = ["register"]

_T = TypeVar("_T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _run(db_url: str | None, home: Path | None, op: Callable[[KeyStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        engine = await open_migrated_engine(resolve_db_url(db_url, home))
        try:
            return await op(KeyStore(engine, cache_ttl=0))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except AirlockError as exc:
        raise _fail(exc.message) from None
    except (DatabaseUrlError, SQLAlchemyError, OSError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise _fail(f"key store unavailable ({type(exc).__name__}): {first}") from None


def _csv(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def _print_issued(issued: IssuedKey, as_json: bool, verb: str) -> None:
    if as_json:
        typer.echo(json.dumps({"key": issued.key, **issued.info.to_json_dict()}, indent=2))
        return
    console = Console()
    console.print(f"{verb} API key [bold]{issued.info.id}[/bold] ({issued.info.spec.name})")
    console.print(f"  key: [bold]{issued.key}[/bold]")
    console.print("  [yellow]This key is shown only once; store it now.[/yellow]")


def create(
    name: Annotated[str, typer.Option(help="A label for the key.")],
    tenant: Annotated[str, typer.Option(help="Owner/tenant id.")] = "default",
    models: Annotated[str | None, typer.Option(help="Allowed models, comma-separated.")] = None,
    regions: Annotated[str | None, typer.Option(help="Allowed regions, comma-separated.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Budget, USD per day.")] = None,
    budget_usd_month: Annotated[float | None, typer.Option(help="Budget, USD per month.")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry (ISO 8601).")] = None,
    privacy_policy: Annotated[
        str | None, typer.Option(help="block, self-hosted-only or pseudonymize.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May manage keys and all usage.")] = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Create an API key and print it (only this once)."""
    try:
        expires_at = parse_when(expires, "--expires") if expires else None
        spec = KeySpec(
            name=name,
            tenant=tenant,
            allowed_models=_csv(models),
            allowed_regions=_csv(regions),
            rpm=rpm,
            tpm=tpm,
            budget_usd_daily=budget_usd,
            budget_usd_monthly=budget_usd_month,
            expires_at=expires_at,
            privacy_policy=cast(PrivacyPolicy | None, privacy_policy),
            is_admin=admin,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except AirlockError as exc:
        raise _fail(exc.message) from None
    issued = _run(db_url, home, lambda ks: ks.create(spec))
    _print_issued(issued, as_json, "Created")


def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Hide revoked keys.")] = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """List keys (never their secrets)."""
    infos = _run(db_url, home, lambda ks: ks.list(tenant=tenant, include_revoked=not active))
    if as_json:
        typer.echo(json.dumps([i.to_json_dict() for i in infos], indent=2))
        return
    table = Table(title="API keys")
    for col in ("id", "prefix", "name", "tenant", "models", "rpm", "tpm", "$/day", "status"):
        table.add_column(col)
    for info in infos:
        s = info.spec
        table.add_row(
            info.id,
            info.key_prefix + "…",
            s.name,
            s.tenant,
            "all" if s.allowed_models is None else ",".join(sorted(s.allowed_models)),
            "-" if s.rpm is None else str(s.rpm),
            "-" if s.tpm is None else str(s.tpm),
            "-" if s.budget_usd_daily is None else f"{s.budget_usd_daily:g}",
            _status(info),
        )
    Console().print(table)


def _status(info: ApiKeyInfo) -> str:
    if info.revoked_at is not None:
        return "revoked"
    if info.spec.expires_at is not None:
        return f"expires {info.spec.expires_at.isoformat()}"
    return "active"


def show(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Print one key's metadata as JSON."""
    info = _run(db_url, home, lambda ks: ks.get(key_id))
    typer.echo(json.dumps(info.to_json_dict(), indent=2))


def rotate(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Give a key a new secret (same id and policy); the old secret stops working."""
    issued = _run(db_url, home, lambda ks: ks.rotate(key_id))
    _print_issued(issued, as_json, "Rotated")


def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Revoke a key; requests with it get 401."""
    info = _run(db_url, home, lambda ks: ks.revoke(key_id))
    if as_json:
        typer.echo(json.dumps(info.to_json_dict(), indent=2))
    else:
        typer.echo(f"revoked {info.id}")


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys.", no_args_is_help=True)
    keys.command("create")(create)
    keys.command("list")(list_keys)
    keys.command("show")(show)
    keys.command("rotate")(rotate)
    keys.command("revoke")(revoke)
    app.add_typer(keys, name="keys")
