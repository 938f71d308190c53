"""The one clock: time in the database is naive UTC, made here; a clinic's day and wall-clock time come from
its time zone, also here. Nothing else calls `date.today()`, `datetime.now()` or `ZoneInfo(...)` for a
clinic (ruff's DTZ rules keep it that way), so "today" means the same thing on every page, in every PDF and
in every rule.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "UTC"
DISPLAY_FORMAT = "%d %b %Y, %H:%M"


def utcnow() -> datetime:
    """Now, as the naive UTC the database keeps."""
    return datetime.now(UTC).replace(tzinfo=None)


@cache
def zone_info(zone: str | None) -> ZoneInfo:
    """The clinic's zone; an unknown or empty name is UTC (a clinic row never makes a page fail)."""
    try:
        return ZoneInfo(zone or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def clinic_now(zone: str | None) -> datetime:
    """Now, as an aware datetime in the clinic's zone."""
    return datetime.now(UTC).astimezone(zone_info(zone))


def clinic_today(zone: str | None) -> date:
    """The clinic's calendar day right now (not the server's, not UTC's)."""
    return clinic_now(zone).date()


def to_clinic_time(value: datetime, zone: str | None) -> datetime:
    """A stored time (naive UTC, or aware) as an aware datetime in the clinic's zone."""
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(zone_info(zone))


def format_clinic_time(value: datetime | None, zone: str | None, fmt: str = DISPLAY_FORMAT) -> str:
    """The one formatter of stored times for people: pages, PDFs, CSVs and emails."""
    if value is None:
        return ""
    return to_clinic_time(value, zone).strftime(fmt)


def local_to_utc(value: datetime, zone: str | None) -> datetime:
    """A wall-clock time typed in the clinic's zone, as the naive UTC the database keeps."""
    return value.replace(tzinfo=zone_info(zone)).astimezone(UTC).replace(tzinfo=None)


def utc_to_local(value: datetime, zone: str | None) -> datetime:
    """A naive UTC time from the database as the clinic's wall-clock time (naive), for form fields."""
    return to_clinic_time(value, zone).replace(tzinfo=None)


def clinic_day_start(day: date, zone: str | None) -> datetime:
    """The naive UTC instant at which `day` begins in the clinic's zone (its local midnight)."""
    # A wall-clock midnight, zoned by local_to_utc.
    return local_to_utc(datetime(day.year, day.month, day.day), zone)  # noqa: DTZ001


def clinic_day_end(day: date, zone: str | None) -> datetime:
    """The naive UTC instant at which `day` ends in the clinic's zone (the next local midnight)."""
    return clinic_day_start(day + timedelta(days=1), zone)


def add_years(day: date, years: int) -> date:
    """`day` moved by whole years; 29 February becomes 28 February in a year without one."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)
