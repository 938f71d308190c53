"""The clinic as a patient needs it: its phone, address and opening hours (every portal page's footer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ..accounts.models import Tenant
from ..clock import clinic_now, zone_info

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_HOURS = {str(day): [["08:00", "17:00"]] for day in range(5)}


@dataclass(frozen=True)
class HoursLine:
    days: str
    hours: str


def opening_hours(tenant: Tenant) -> dict[int, list[tuple[time, time]]]:
    """The clinic's weekly hours as {weekday: [(opens, closes), …]} (Monday = 0); unset: weekdays 8–17."""
    raw = tenant.hours if tenant.hours is not None else DEFAULT_HOURS
    week: dict[int, list[tuple[time, time]]] = {}
    for day, intervals in raw.items():
        week[int(day)] = sorted((time.fromisoformat(a), time.fromisoformat(b)) for a, b in intervals)
    return week


def _interval_text(intervals: list[tuple[time, time]]) -> str:
    if not intervals:
        return "Closed"
    return ", ".join(f"{a:%H:%M}–{b:%H:%M}" for a, b in intervals)


def hours_lines(tenant: Tenant) -> list[HoursLine]:
    """The week in a few lines, runs of days with the same hours together ("Monday–Friday 08:00–17:00")."""
    week = opening_hours(tenant)
    lines: list[HoursLine] = []
    start = 0
    for day in range(1, 8):
        if day == 7 or week.get(day, []) != week.get(start, []):
            days = WEEKDAYS[start] if day - 1 == start else f"{WEEKDAYS[start]}–{WEEKDAYS[day - 1]}"
            lines.append(HoursLine(days, _interval_text(week.get(start, []))))
            start = day
    return lines


def is_open_at(tenant: Tenant, moment: datetime) -> bool:
    """Whether the clinic is open at `moment` (aware, any zone)."""
    local = moment.astimezone(zone_info(tenant.timezone))
    return any(a <= local.time() < b for a, b in opening_hours(tenant).get(local.weekday(), []))


def open_now(tenant: Tenant) -> bool:
    return is_open_at(tenant, clinic_now(tenant.timezone))


def next_opening(tenant: Tenant, after: datetime) -> datetime | None:
    """The next moment the clinic opens after `after` (aware), within two weeks; None if never."""
    zone = zone_info(tenant.timezone)
    local = after.astimezone(zone)
    week = opening_hours(tenant)
    for offset in range(15):
        day: date = local.date() + timedelta(days=offset)
        for opens, _closes in week.get(day.weekday(), []):
            candidate = datetime.combine(day, opens, tzinfo=zone)
            if candidate > local:
                return candidate
    return None
