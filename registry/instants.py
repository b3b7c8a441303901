"""Parsing the dates and instants callers pass (``"2024-01-15"``, ISO datetimes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from registry.errors import InvalidInput


def parse_instant(value: str | date | datetime, *, end_of_day: bool = True) -> datetime:
    """A datetime; a bare date means the end of that day (UTC), or its start."""
    day_time = time.max if end_of_day else time.min
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):
        return datetime.combine(value, day_time, tzinfo=UTC)
    if not isinstance(value, str):
        raise InvalidInput(f"date must be an ISO date or datetime, got {value!r}")
    try:
        if len(value.strip()) == 10:
            return datetime.combine(date.fromisoformat(value.strip()), day_time, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"invalid date {value!r}: expected ISO 8601, e.g. 2024-01-15") from None
    return _utc(parsed)


def _utc(value: datetime) -> datetime:
    """Naive means UTC; an offset is converted, since SQLite stores no zone at all."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
