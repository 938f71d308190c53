"""Time counted in clinic hours: a task due "8 clinic hours" after a message arrives on Friday at 16:00 is
due on Monday at 15:00 when the clinic opens 08:00–17:00 on weekdays.

Pure functions over the clinic's week (`portal.clinic.opening_hours`) and its zone. Each opening interval is
made an aware datetime on its own local day and converted to UTC before any arithmetic, so a day on which
the clocks change is as long as it really is (an interval across a change counts the hours that passed).
Times in and out are naive UTC, as the database keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

Week = dict[int, list[tuple[time, time]]]

# How far ahead to look for opening hours before giving up (a clinic closed for months counts as never).
SEARCH_DAYS = 400


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def open_intervals(week: Week, zone: ZoneInfo, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The clinic's opening intervals (naive UTC) from the local day of `start` (naive UTC) onwards,
    clipped to begin no earlier than `start`."""
    local_day = start.replace(tzinfo=UTC).astimezone(zone).date()
    for offset in range(SEARCH_DAYS):
        day = local_day + timedelta(days=offset)
        for opens, closes in week.get(day.weekday(), []):
            begin = _utc(datetime.combine(day, opens, tzinfo=zone))
            end = _utc(datetime.combine(day, closes, tzinfo=zone))
            if end <= start or end <= begin:
                continue
            yield max(begin, start), end


def _never_open(week: Week) -> bool:
    return not any(opens < closes for intervals in week.values() for opens, closes in intervals)


def add_clinic_minutes(week: Week, zone: ZoneInfo, start: datetime, minutes: int) -> datetime:
    """The instant (naive UTC) `minutes` of opening time after `start`. A clinic with no hours at all
    counts the clock (a target must still give a due time)."""
    if minutes <= 0:
        return start
    if _never_open(week):
        return start + timedelta(minutes=minutes)
    left = timedelta(minutes=minutes)
    for begin, end in open_intervals(week, zone, start):
        span = end - begin
        if left <= span:
            return begin + left
        left -= span
    return start + timedelta(minutes=minutes)


def clinic_minutes_between(week: Week, zone: ZoneInfo, start: datetime, end: datetime) -> int:
    """Whole minutes of opening time from `start` to `end` (naive UTC); negative when `end` is earlier."""
    if end < start:
        return -clinic_minutes_between(week, zone, end, start)
    if _never_open(week):
        return int((end - start).total_seconds() // 60)
    total = timedelta()
    for begin, close in open_intervals(week, zone, start):
        if begin >= end:
            break
        total += min(close, end) - begin
    return int(total.total_seconds() // 60)


def describe_minutes(minutes: int) -> str:
    """A span in a few words for people: "45 min", "3 h 10 min", "2 days 4 h"."""
    minutes = abs(int(minutes))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {mins} min" if mins else "")
    return f"{mins} min"
