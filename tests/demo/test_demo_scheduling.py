"""`flask demo`'s scheduling: types, hours, exceptions, a holiday, three weeks of history and three of
bookings, the main demo patient's two upcoming appointments (one inside the cut-off) and a waiting patient,
whatever day the demo is made on."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
import time_machine
from sqlalchemy import select

from healthcrm.accounts.models import DOCTOR, NURSE, Tenant, User
from healthcrm.clock import clinic_today, to_clinic_time, utcnow
from healthcrm.demo.data import DEMO_CLINICS, seed_demo
from healthcrm.demo.scheduling import us_holidays
from healthcrm.extensions import db
from healthcrm.scheduling.booking import patient_rules
from healthcrm.scheduling.models import (
    BOOKED,
    CANCELLED,
    COMPLETED,
    EXTRA_HOURS,
    NO_SHOW,
    TIME_OFF,
    VIDEO,
    WAITING,
    Appointment,
    AppointmentType,
    AvailabilityException,
    ClinicClosure,
    WaitlistEntry,
    WeeklyHours,
)
from healthcrm.scheduling.slots import Exception_, day_intervals, free_slots
from healthcrm.tenancy import scoped

# A Saturday morning the day before the US clocks go forward; New Year's Eve in the evening (a month's and
# a year's end, Chicago past its doctor's hours); the night the US clocks go back (01:30, the hour that
# repeats).
MOMENTS = (
    datetime(2027, 3, 13, 15, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
)


def _all(model, tenant: Tenant) -> list:
    return list(db.session.scalars(scoped(model, tenant.id)))


def _staff(tenant: Tenant, role: str) -> User:
    return db.session.scalar(scoped(User, tenant.id).where(User.role == role))


def _local(moment: datetime, tenant: Tenant) -> datetime:
    return to_clinic_time(moment, tenant.timezone).replace(tzinfo=None)


def _check_setup(tenant: Tenant, today: date) -> None:
    types = {t.name: t for t in _all(AppointmentType, tenant)}
    video, checkup, first = types["Video follow-up"], types["Check-up"], types["New patient visit"]
    assert (video.duration_minutes, video.mode, video.patient_bookable) == (30, VIDEO, True)
    assert video.video_link.startswith("https://") and video.preparation
    assert (video.buffer_before_minutes, video.buffer_after_minutes) == (5, 5)
    assert video.reschedule_cutoff_minutes == video.cancel_cutoff_minutes == 24 * 60
    assert (checkup.duration_minutes, checkup.mode, checkup.patient_bookable) == (20, "in_person", True)
    assert (first.duration_minutes, first.patient_bookable) == (45, False)

    hours = defaultdict(list)
    for row in _all(WeeklyHours, tenant):
        hours[row.provider_id, row.weekday].append((row.starts, row.ends))
    for role in (DOCTOR, NURSE):
        provider = _staff(tenant, role)
        for weekday in range(5):
            (morning, afternoon) = sorted(hours[provider.id, weekday])
            assert morning[1] <= afternoon[0]
    saturdays = {provider for provider, weekday in hours if weekday == 5}
    assert len(saturdays) == (1 if tenant.slug == "riverside" else 0)  # where the clinic opens on Saturdays

    next_monday = today + timedelta(days=7 - today.weekday())
    exceptions = _all(AvailabilityException, tenant)
    off = [e for e in exceptions if e.kind == TIME_OFF]
    assert len(off) == 1 and off[0].starts is None and next_monday <= off[0].day < next_monday + timedelta(5)
    # An evening next week (and, when the doctor had no time within 24 hours, extra video hours before it).
    assert any(
        e.kind == EXTRA_HOURS and e.starts.hour >= 16 and next_monday <= e.day < next_monday + timedelta(5)
        for e in exceptions
    )

    (closure,) = _all(ClinicClosure, tenant)
    assert today < closure.first_day == closure.last_day <= today + timedelta(days=42)
    assert closure.first_day.weekday() < 5 and "closed" in closure.reason


def _check_appointments(tenant: Tenant, now: datetime, today: date) -> list[Appointment]:
    rows = _all(Appointment, tenant)
    (closure,) = _all(ClinicClosure, tenant)
    week = defaultdict(lambda: defaultdict(list))
    for row in _all(WeeklyHours, tenant):
        week[row.provider_id][row.weekday].append((row.starts, row.ends))
    exceptions = defaultdict(list)
    for e in _all(AvailabilityException, tenant):
        exceptions[e.provider_id, e.day].append(Exception_(e.kind, e.starts, e.ends))

    by_provider = defaultdict(list)
    for row in rows:
        starts, ends = _local(row.starts_at, tenant), _local(row.ends_at, tenant)
        day = starts.date()
        assert day != closure.first_day
        intervals = day_intervals(week[row.provider_id], day, exceptions[row.provider_id, day], closed=False)
        assert any(a <= starts.time() and ends.time() <= b for a, b in intervals), (row.id, starts, intervals)
        assert ends.date() == day
        by_provider[row.provider_id].append((row.blocked_from, row.blocked_until))
        if row.ends_at <= now:
            assert row.status in (COMPLETED, CANCELLED, NO_SHOW)
            assert day >= today - timedelta(days=21)
        else:
            assert row.starts_at > now and row.status == BOOKED
            assert day <= today + timedelta(days=21)
    for spans in by_provider.values():  # never overlapping, buffers included, whatever the status
        spans.sort()
        assert all(earlier[1] <= later[0] for earlier, later in pairwise(spans))

    statuses = [r.status for r in rows]
    assert statuses.count(COMPLETED) >= 20 and CANCELLED in statuses and NO_SHOW in statuses
    assert statuses.count(BOOKED) >= 20
    assert len({r.patient_id for r in rows}) >= 10
    assert all(r.completed_at and r.checked_in_at for r in rows if r.status == COMPLETED)
    assert all(r.cancelled_at and r.cancel_reason for r in rows if r.status == CANCELLED)
    return rows


def _check_portal_patients(tenant: Tenant, rows: list[Appointment], now: datetime, today: date) -> None:
    main = db.session.scalar(scoped(User, tenant.id).where(User.email == f"patient@{tenant.slug}.example"))
    upcoming = sorted(
        (r for r in rows if r.patient_id == main.patient_id and r.status == BOOKED), key=lambda r: r.starts_at
    )
    assert [r.type.name for r in upcoming] == ["Video follow-up", "Check-up"]
    video, checkup = upcoming
    assert now < video.starts_at <= now + timedelta(hours=24)
    assert checkup.starts_at > now + timedelta(hours=24) and checkup.type.mode == "in_person"
    rules = patient_rules(tenant, video, now)
    assert not rules.can_cancel and not rules.can_reschedule and tenant.phone in rules.reason
    assert patient_rules(tenant, checkup, now).can_reschedule
    assert any(r.patient_id == main.patient_id and r.status == COMPLETED for r in rows)

    (entry,) = _all(WaitlistEntry, tenant)
    # They wait for the nurse, so an offer from a cancelled doctor's appointment goes to the visitor.
    nurse = _staff(tenant, NURSE)
    assert (entry.status, entry.type.name, entry.provider_id) == (WAITING, "Video follow-up", nurse.id)
    assert (entry.earliest_day, entry.latest_day) == (today, today + timedelta(days=14))
    assert entry.patient_id != main.patient_id
    assert db.session.scalar(
        select(User.id).where(User.tenant_id == tenant.id, User.patient_id == entry.patient_id)
    )
    assert entry.appointment.starts_at > now and entry.appointment.provider_id == nurse.id

    # A visitor signing in as the main patient finds free video times with the doctor in the next two weeks.
    slots = free_slots(
        tenant.id, tenant.timezone, video.type, [_staff(tenant, DOCTOR).id], today, today + timedelta(days=14)
    )
    assert len(slots) >= 10


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda m: m.strftime("%Y-%m-%d_%H%M"))
def test_the_demo_schedules_both_clinics_on_any_day(app, moment):
    with time_machine.travel(moment, tick=False):
        seed_demo(None)
        now = utcnow()
        for clinic in DEMO_CLINICS:
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == clinic.slug))
            today = clinic_today(tenant.timezone)
            _check_setup(tenant, today)
            rows = _check_appointments(tenant, now, today)
            _check_portal_patients(tenant, rows, now, today)


def test_the_holidays_are_the_observed_federal_ones():
    days = dict(us_holidays(2027))
    assert days[date(2026, 12, 31) + timedelta(days=1)] == "New Year's Day"  # a Friday
    assert days[date(2027, 1, 18)] == "Martin Luther King Jr. Day"
    assert days[date(2027, 5, 31)] == "Memorial Day"
    assert days[date(2027, 7, 5)] == "Independence Day"  # the 4th is a Sunday
    assert days[date(2027, 11, 25)] == "Thanksgiving Day"
    assert days[date(2027, 12, 24)] == "Christmas Day"  # the 25th is a Saturday
