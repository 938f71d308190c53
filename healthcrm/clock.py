"""Time in the database is naive UTC; this is the one place that makes it."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def local_to_utc(value: datetime, zone: str) -> datetime:
    """A wall-clock time typed in the clinic's zone, as the naive UTC the database keeps."""
    return value.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC).replace(tzinfo=None)


def utc_to_local(value: datetime, zone: str) -> datetime:
    """A naive UTC time from the database as the clinic's wall-clock time (naive), for form fields."""
    return value.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)
