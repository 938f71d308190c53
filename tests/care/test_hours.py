"""Due times counted in clinic hours: nights, weekends, holidays of a closed day, and the days the clocks
change (America/New_York: 8 March 2026 springs forward, 1 November 2026 falls back)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthcrm.care.hours import add_clinic_minutes, clinic_minutes_between, describe_minutes

NY = ZoneInfo("America/New_York")
WEEKDAYS_8_TO_17 = {day: [(time(8), time(17))] for day in range(5)}


def utc(*args) -> datetime:
    return datetime(*args)


def test_within_the_same_day():
    # Tuesday 3 March 2026, 10:00 EST = 15:00 UTC; + 2 h → 12:00 EST.
    assert add_clinic_minutes(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 3, 15), 120) == utc(2026, 3, 3, 17)


def test_a_night_is_skipped():
    # Tuesday 16:00 EST + 8 h: 1 h on Tuesday, 7 h on Wednesday from 08:00 → 15:00 EST (20:00 UTC).
    assert add_clinic_minutes(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 3, 21), 8 * 60) == utc(2026, 3, 4, 20)


def test_a_weekend_is_skipped_and_the_spring_change_counts_right():
    # Friday 6 March 16:00 EST (21:00 UTC) + 8 h → Monday 9 March 15:00 EDT (19:00 UTC, a new offset).
    assert add_clinic_minutes(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 6, 21), 8 * 60) == utc(2026, 3, 9, 19)


def test_the_autumn_change():
    # Friday 30 October 16:00 EDT (20:00 UTC) + 8 h → Monday 2 November 15:00 EST (20:00 UTC).
    assert add_clinic_minutes(WEEKDAYS_8_TO_17, NY, utc(2026, 10, 30, 20), 8 * 60) == utc(2026, 11, 2, 20)


def test_an_interval_across_the_clock_change_is_as_long_as_it_really_is():
    # Open on Sundays 01:00–04:00 local: on 8 March 2026 that is 2 real hours (02:00–03:00 never happens).
    week = {6: [(time(1), time(4))]}
    start = utc(2026, 3, 8, 5)  # 00:00 EST
    assert clinic_minutes_between(week, NY, start, utc(2026, 3, 8, 12)) == 120
    # 2 h 30 min: 2 h that Sunday, 30 min the next Sunday from 01:00 EDT (05:00 UTC).
    assert add_clinic_minutes(week, NY, start, 150) == utc(2026, 3, 15, 5, 30)
    # In November the same hours are 4 real hours (01:00–02:00 happens twice).
    assert clinic_minutes_between(week, NY, utc(2026, 11, 1, 4), utc(2026, 11, 1, 12)) == 240


def test_starting_at_night_counts_from_the_next_opening():
    # Wednesday 02:00 EST (07:00 UTC) + 30 min → 08:30 EST.
    assert add_clinic_minutes(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 4, 7), 30) == utc(2026, 3, 4, 13, 30)


def test_starting_on_saturday():
    assert add_clinic_minutes(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 7, 15), 60) == utc(2026, 3, 9, 13)


def test_split_days_and_a_closed_weekday():
    week = {0: [(time(8), time(12)), (time(13), time(17))], 2: [(time(9), time(10))]}
    utc_zone = ZoneInfo("UTC")
    # Monday 11:00 + 3 h: 1 h before lunch, 2 h after → 15:00; + 6 h → Monday 17:00 then Wednesday 09:00–10:00
    assert add_clinic_minutes(week, utc_zone, utc(2026, 3, 2, 11), 180) == utc(2026, 3, 2, 15)
    assert add_clinic_minutes(week, utc_zone, utc(2026, 3, 2, 11), 6 * 60) == utc(2026, 3, 4, 10)


def test_a_clinic_without_hours_counts_the_clock():
    assert add_clinic_minutes({}, NY, utc(2026, 3, 7, 15), 90) == utc(2026, 3, 7, 16, 30)
    assert clinic_minutes_between({}, NY, utc(2026, 3, 7, 15), utc(2026, 3, 7, 16)) == 60


def test_minutes_between_over_a_weekend():
    # Friday 16:00 EST to Monday 09:00 EDT: 1 h + 1 h.
    assert clinic_minutes_between(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 6, 21), utc(2026, 3, 9, 13)) == 120
    assert clinic_minutes_between(WEEKDAYS_8_TO_17, NY, utc(2026, 3, 9, 13), utc(2026, 3, 6, 21)) == -120


@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    minutes=st.integers(min_value=1, max_value=60 * 60),
)
def test_adding_then_measuring_gives_the_minutes_back(start, minutes):
    start = start.replace(second=0, microsecond=0)
    due = add_clinic_minutes(WEEKDAYS_8_TO_17, NY, start, minutes)
    assert clinic_minutes_between(WEEKDAYS_8_TO_17, NY, start, due) == minutes


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(45, "45 min"), (190, "3 h 10 min"), (120, "2 h"), (60 * 52, "2 days 4 h"), (1440, "1 day")],
)
def test_describe_minutes(minutes, text):
    assert describe_minutes(minutes) == text
