"""Times in the controller's tables: UNIX epoch seconds (floats), aware datetimes in code.

Floats sort and compare the same on SQLite and PostgreSQL and carry no time zone to
get wrong; a naive datetime is refused rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["from_epoch", "to_epoch"]


def to_epoch(moment: datetime) -> float:
    """``moment`` as epoch seconds; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.timestamp()


def from_epoch(value: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)
