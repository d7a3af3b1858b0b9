"""Parse the times operators type on the command line (always ending up in UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

__all__ = ["parse_when"]


def parse_when(text: str, name: str) -> datetime:
    """``2025-06-01`` (midnight UTC) or ISO 8601 (``2025-06-01T12:00:00+02:00``;
    without an offset it is taken as UTC). ``name`` goes into the error message."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
