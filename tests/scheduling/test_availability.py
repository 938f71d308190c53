"""Availability as the slots see it: weekly hours saved through the services (several intervals a day),
time off and extra hours on a date, clinic closures, and a 09:00 slot that stays 09:00 local on the days the
clocks move (Europe/Berlin, spring forward and fall back)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from healthcrm.clock import format_clinic_time
from healthcrm.scheduling import availability
from healthcrm.scheduling.booking import SchedulingError
from healthcrm.scheduling.slots import free_slots
from tests.scheduling.scheduling_data import MONDAY_8AM, ZONE, at, make_clinic, utc

TUESDAY = date(2031, 1, 7)


def _local_starts(clinic, day: date, kind=None, now=MONDAY_8AM) -> list[str]:
    slots = free_slots(
        clinic.tenant.id,
        ZONE,
        kind or clinic.checkup,
        [clinic.doctor.id],
        day,
        day,
        now=now.replace(tzinfo=None),
        ignore_notice=True,
    )
    return [format_clinic_time(s.starts_at, ZONE, "%H:%M") for s in slots]


def test_weekly_hours_with_two_intervals_make_the_days_slots(app):
    clinic = make_clinic()
    admin = clinic.actor(clinic.admin)
    availability.save_weekly_hours(
        admin,
        clinic.doctor.id,
        {"starts_1_0": "08:00", "ends_1_0": "09:00", "starts_1_1": "16:00", "ends_1_1": "16:40"},
    )
    assert _local_starts(clinic, TUESDAY) == ["08:00", "08:20", "08:40", "16:00", "16:20"]
    assert _local_starts(clinic, date(2031, 1, 8)) == []  # Wednesday has no hours now


def test_overlapping_weekly_intervals_are_refused_and_nothing_changes(app):
    clinic = make_clinic()
    before = availability.weekly_hours(clinic.tenant.id, clinic.doctor.id)
    with pytest.raises(SchedulingError, match="overlap"):
        availability.save_weekly_hours(
            clinic.actor(clinic.doctor),
            clinic.doctor.id,
            {"starts_4_0": "09:00", "ends_4_0": "12:00", "starts_4_1": "11:30", "ends_4_1": "14:00"},
        )
    assert availability.weekly_hours(clinic.tenant.id, clinic.doctor.id) == before


def test_time_off_and_extra_hours_change_one_date(app):
    clinic = make_clinic()
    doctor = clinic.actor(clinic.doctor)
    with at(MONDAY_8AM):
        availability.add_exception(
            doctor, clinic.doctor.id, {"day": "2031-01-07", "kind": "off", "starts": "09:00", "ends": "16:00"}
        )
        availability.add_exception(doctor, clinic.doctor.id, {"day": "2031-01-08", "kind": "off"})
        availability.add_exception(
            doctor,
            clinic.doctor.id,
            {"day": "2031-01-11", "kind": "extra", "starts": "10:00", "ends": "11:00"},
        )
    assert _local_starts(clinic, TUESDAY) == ["16:00", "16:20", "16:40"]
    assert _local_starts(clinic, date(2031, 1, 8)) == []
    assert _local_starts(clinic, date(2031, 1, 11)) == ["10:00", "10:20", "10:40"]  # a Saturday
    assert len(_local_starts(clinic, date(2031, 1, 9))) == 21  # untouched: 9 + 12 slots


def test_a_clinic_closure_removes_everyones_slots(app):
    clinic = make_clinic()
    with at(MONDAY_8AM):
        availability.add_closure(
            clinic.actor(clinic.admin),
            {"first_day": "2031-01-07", "last_day": "2031-01-08", "reason": "Holiday"},
        )
    assert _local_starts(clinic, TUESDAY) == []
    assert _local_starts(clinic, date(2031, 1, 8)) == []
    assert _local_starts(clinic, date(2031, 1, 9))


@pytest.mark.parametrize(
    ("day", "utc_hour", "day_before_utc_hour"),
    [
        (date(2031, 3, 30), 7, 8),  # spring forward: 09:00 CEST is 07:00 UTC (the Saturday, CET: 08:00)
        (date(2031, 10, 26), 8, 7),  # fall back: 09:00 CET is 08:00 UTC (the Saturday, CEST: 07:00)
    ],
)
def test_a_weekly_0900_interval_gives_a_0900_local_slot_on_dst_days(app, day, utc_hour, day_before_utc_hour):
    clinic = make_clinic()
    availability.save_weekly_hours(
        clinic.actor(clinic.admin),
        clinic.doctor.id,
        {"starts_5_0": "09:00", "ends_5_0": "10:00", "starts_6_0": "09:00", "ends_6_0": "10:00"},
    )
    now = datetime(day.year, day.month, day.day - 3, 6, 0, tzinfo=UTC)
    slots = free_slots(
        clinic.tenant.id,
        ZONE,
        clinic.checkup,
        [clinic.doctor.id],
        day,
        day,
        now=now.replace(tzinfo=None),
        ignore_notice=True,
    )
    assert slots[0].starts_at == utc(day.year, day.month, day.day, utc_hour, 0)
    assert [format_clinic_time(s.starts_at, ZONE, "%H:%M") for s in slots] == ["09:00", "09:20", "09:40"]
    saturday = date(day.year, day.month, day.day - 1)
    before = free_slots(
        clinic.tenant.id,
        ZONE,
        clinic.checkup,
        [clinic.doctor.id],
        saturday,
        saturday,
        now=now.replace(tzinfo=None),
        ignore_notice=True,
    )
    assert before[0].starts_at == utc(saturday.year, saturday.month, saturday.day, day_before_utc_hour, 0)
