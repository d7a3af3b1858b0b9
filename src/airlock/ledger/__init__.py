"""The usage ledger: one metadata row per request, cost, reports, migrations.

Import the parts from their modules: ``record`` (RequestRecord), ``runtime``
(open_ledger, Ledger), ``writer`` (LedgerWriter), ``db`` (engines and URLs),
``migrate`` (Alembic), ``prices``, ``reports``, ``spend``. This package module only
re-exports the record types, so importing it stays cheap and cycle-free.
"""

from airlock.ledger._vocab import (
    ENDPOINTS,
    ERROR_TYPES,
    FINISH_REASONS,
    ID_PATTERN,
    KEY_KINDS,
    ROUTE_REASONS,
    TIERS,
)
from airlock.ledger.record import RecordValidationError, RequestRecord, error_type_of

__all__ = [
    "ENDPOINTS",
    "ERROR_TYPES",
    "FINISH_REASONS",
    "ID_PATTERN",
    "KEY_KINDS",
    "ROUTE_REASONS",
    "TIERS",
    "RecordValidationError",
    "RequestRecord",
    "error_type_of",
]
