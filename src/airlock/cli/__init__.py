"""The ``airlock`` command line: thin commands over the modules that do the work."""

from __future__ import annotations

import typer

from airlock import __version__

__all__ = ["build_app", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airlock {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    from airlock.cli import audit, classify, deploy, keys, ledger, route, serve, vllm

    app = typer.Typer(
        name="airlock",
        help="A privacy-first, OpenAI-compatible gateway for self-hosted LLMs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ) -> None:
        """airlock: one OpenAI-compatible endpoint for your self-hosted models."""

    for module in (serve, classify, route, keys, ledger, audit, deploy, vllm):
        module.register(app)
    return app


def main() -> None:
    build_app()()
