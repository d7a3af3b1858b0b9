"""Options several ``airlock`` commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DbUrlOpt", "HomeOpt"]

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", envvar="AIRLOCK_HOME", help="Data directory (default ./.airlock)."),
]
DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        envvar="AIRLOCK_DATABASE_URL",
        help="Database URL (default: SQLite in the data directory).",
    ),
]
