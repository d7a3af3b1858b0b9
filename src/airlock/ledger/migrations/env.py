"""Alembic environment: run with the connection handed over by airlock.ledger.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from airlock.ledger.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "run migrations with `airlock db upgrade` or airlock.ledger.migrate, "
        "which pass the database connection"
    )
_run(_connection)
