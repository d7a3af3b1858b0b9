"""Export audit records for auditors: JSONL (signed lines) or CSV (flat)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from airlock.ledger.db import as_utc
from airlock.ledger.models import AUDIT_RECORDS
from airlock.ledger.record import RequestRecord
from airlock.privacy.audit.entries import ChainEntry

__all__ = ["CSV_COLUMNS", "ExportFormat", "export_records"]

ExportFormat = Literal["jsonl", "csv"]
_RECORDS = AUDIT_RECORDS
_CHUNK = 2000
_REQUEST_FIELDS = [f for f in RequestRecord.__dataclass_fields__ if f != "request_id"]
CSV_COLUMNS = [
    "index",
    "appended_at",
    "event",
    "request_id",
    *_REQUEST_FIELDS,
    "purge_before",
    "purge_removed",
    "purge_anchor_index",
    "purge_usage_before",
    "purge_usage_removed",
    "prev_hash",
    "hash",
]


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


async def export_records(
    engine: AsyncEngine,
    out: TextIO,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: ExportFormat = "jsonl",
) -> int:
    """Write the records whose time (request time; purge time for purges) lies in
    ``[since, until)`` to ``out`` in chain order; returns how many were written.

    JSONL lines are the mirror's signed lines (body + ``hash``), so a holder of the
    audit key can check each one; CSV flattens the fields for spreadsheets.
    """
    low, high = _utc(since, "since"), _utc(until, "until")
    if fmt not in ("jsonl", "csv"):
        raise ValueError("format must be jsonl or csv")
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    count, after = 0, -(1 << 62)
    async with engine.connect() as conn:
        while True:
            query = select(_RECORDS).where(_RECORDS.c.idx > after)
            if low is not None:
                query = query.where(_RECORDS.c.ts >= low)
            if high is not None:
                query = query.where(_RECORDS.c.ts < high)
            rows = (await conn.execute(query.order_by(_RECORDS.c.idx).limit(_CHUNK))).all()
            if not rows:
                return count
            for r in rows:
                entry = ChainEntry(
                    r.idx,
                    as_utc(r.ts),
                    as_utc(r.appended_at),
                    r.event,
                    r.request_id,
                    r.prev_hash,
                    r.hash,
                    r.body,
                )
                if writer is None:
                    out.write(entry.jsonl_line() + "\n")
                else:
                    writer.writerow(_csv_row(entry))
                count += 1
            after = rows[-1].idx


def _csv_row(entry: ChainEntry) -> dict[str, Any]:
    body = json.loads(entry.body)
    data: dict[str, Any] = body.get("data", {})
    row: dict[str, Any] = {
        "index": entry.index,
        "appended_at": entry.appended_at.isoformat(),
        "event": entry.event,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
    if entry.event == "purge":
        row["purge_before"] = data.get("before")
        row["purge_removed"] = data.get("removed")
        row["purge_anchor_index"] = data.get("anchor_index")
        row["purge_usage_before"] = data.get("usage_before")
        row["purge_usage_removed"] = data.get("usage_removed")
        return row
    row["request_id"] = data.get("request_id")
    for name in _REQUEST_FIELDS:
        value = data.get(name)
        row[name] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
    return row
