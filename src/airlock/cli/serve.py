"""``airlock serve`` and ``airlock models``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from airlock.config import ConfigError, Settings, load_settings

__all__ = ["register"]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"airlock: {exc}", err=True)
        raise typer.Exit(2) from None


def _check_audit_key(settings: Settings) -> None:
    """A configured audit key is never created: stop before anything else is made (or a
    port bound) when it is missing, exposed or malformed."""
    from airlock.privacy.audit.errors import AuditKeyError
    from airlock.privacy.audit.key import load_audit_key

    try:
        load_audit_key(settings.home, settings.env.audit_key_file)
    except AuditKeyError as exc:
        typer.echo(f"airlock: {exc}", err=True)
        raise typer.Exit(2) from None


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8080, min=0, max=65535, help="Port to listen on."),
    log_level: str | None = typer.Option(
        None, help="debug, info, warning or error (default: AIRLOCK_LOG_LEVEL or info)."
    ),
) -> None:
    """Serve the OpenAI-compatible API (with no config: the embedded model)."""
    import uvicorn

    from airlock.api.app import create_app
    from airlock.logs import configure_logging

    settings = _settings(config)
    if settings.env.audit_key_file is not None:
        _check_audit_key(settings)
    from airlock.api.services import price_catalog
    from airlock.providers.registry import builtin_registry
    from airlock.providers.resources import Resources
    from airlock.routing.table import ModelTable

    # Fail before binding, not in the middle of start-up: prices, provider names and
    # each provider's own options (constructing a provider starts nothing).
    try:
        price_catalog(settings)
        ModelTable.build(settings.app, builtin_registry(), Resources(settings.home))
    except ConfigError as exc:
        typer.echo(f"airlock: {exc}", err=True)
        raise typer.Exit(2) from None
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else type(exc).__name__
        typer.echo(f"airlock: invalid deployment in the configuration: {message}", err=True)
        raise typer.Exit(2) from None
    level = log_level or settings.env.log_level
    if level not in {"debug", "info", "warning", "error"}:
        typer.echo("airlock: --log-level must be debug, info, warning or error", err=True)
        raise typer.Exit(2)
    configure_logging(level)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"airlock: listening on http://{shown}:{port} (models load before the first request)"
    )
    typer.echo(
        f"  try: curl http://{shown}:{port}/v1/chat/completions "
        '-H "Authorization: Bearer $AIRLOCK_MASTER_KEY" -H "Content-Type: application/json" '
        '-d \'{"model": "smollm2", "messages": [{"role": "user", "content": "Hello!"}]}\''
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=30,
    )


def models(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the models the configuration serves."""
    settings = _settings(config)
    rows = [
        {
            "name": m.name,
            "tier": m.tier,
            "capabilities": sorted(m.capabilities),
            "deployments": [f"{d.provider}@{d.region}" for d in m.deployments],
        }
        for m in settings.app.models
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "tier", "capabilities", "deployments")
    for m in settings.app.models:
        table.add_row(
            m.name,
            m.tier,
            ", ".join(sorted(m.capabilities)),
            ", ".join(f"{d.provider}@{d.region}" for d in m.deployments),
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(models)
