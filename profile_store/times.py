"""System timestamps (aware UTC, models.py) as the drivers give them back and take them.

SQLite keeps a DateTime(timezone=True) as naive UTC text, and a `text()` query hands back the
text itself; PostgreSQL gives aware values. One pair of helpers for every module, so a value
read from either back-end compares and binds the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc(value: datetime) -> datetime:
    """Aware UTC: a naive value is taken as UTC (how the store keeps system time)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_utc(value: Any) -> datetime | None:
    """A system timestamp read back (None, ISO text, naive or aware) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value)


def sqlite_utc(at: datetime) -> str:
    """An aware datetime as SQLAlchemy stores a DateTime(timezone=True) in SQLite (UTC, no
    offset): how a statement run through the driver itself binds a system time there."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
