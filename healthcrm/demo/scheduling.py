"""Demo scheduling for a new demo clinic: three appointment types, the doctor's and the nurse's weekly hours,
a day off and an evening of extra hours next week, a public holiday ahead, three weeks of history (completed,
cancelled, no-show) and three weeks of bookings, and one patient on the waitlist.

Everything is anchored to the clinic's today and "now", so the demo reads the same whatever day it is made on
(a weekend, a DST day, a month's end). Every appointment's time comes from the real slot generator
(`slots.provider_slots`): within the provider's hours, never on the closure, wall-clock times converted
per local day. Every appointment is inserted as a booking, so the database's no-overlap rule
(models.NO_OVERLAP_DDL) checks each one; the past ones are given their final status afterwards.
`booking.book` is not used: it commits and queues its events per call, while a demo clinic is built in one
transaction whose events `seed_demo` handles itself; and a hundred confirmation emails and coach tasks for
bookings "made weeks ago" would bury the ones a visitor makes.

The main demo patient gets, on purpose: an in-person check-up more than 24 hours away (movable online) and a
video follow-up within 24 hours of now (past the cut-offs, so the portal shows why and the clinic's phone).
The second portal patient waits for an earlier video follow-up with the doctor (the waitlist).
"""

from __future__ import annotations

import random
from bisect import insort
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from ..accounts.models import DOCTOR, FRONT_DESK, NURSE, Tenant, User
from ..clock import clinic_today, to_clinic_time, utcnow, zone_info
from ..extensions import db
from ..patients.models import Patient
from ..scheduling.booking import blocked_span
from ..scheduling.models import (
    BOOKED,
    CANCELLED,
    COMPLETED,
    EXTRA_HOURS,
    IN_PERSON,
    NO_SHOW,
    TIME_OFF,
    VIDEO,
    WAITING,
    Appointment,
    AppointmentType,
    AvailabilityException,
    ClinicClosure,
    SchedulingSettings,
    WaitlistEntry,
    WeeklyHours,
)
from ..scheduling.slots import Exception_, Interval, Slot, Span, provider_slots

HISTORY_DAYS = 21  # past appointments on the last three weeks' days (and today's earlier ones)
AHEAD_DAYS = 21  # bookings for the next three weeks
WAITLIST_DAYS = 14  # the waiting patient would take any day of the next two weeks
# The main patient's video follow-up starts within this window after now: inside the 24-hour cut-off, yet
# still ahead for the hours someone tries the demo.
SOON_AFTER = timedelta(hours=2)
SOON_BEFORE = timedelta(hours=22)
# Their check-up is at least this far ahead: outside the cut-off for a few days of trying.
CHECKUP_AFTER = timedelta(days=3)
# Upcoming bookings start at least this long after now (nobody is booked for "in five minutes").
UPCOMING_AFTER = timedelta(minutes=30)
# The closure is a public holiday within these days ahead (not tomorrow: the soon video must not fall on it).
CLOSURE_FIRST_DAY = 2
CLOSURE_LAST_DAY = 42
FALLBACK_CLOSURE_DAY = 14  # no holiday in that window (late winter, August): a training day instead
# Extra video hours when the doctor has no time within 24 hours (a weekend, a Friday evening): local times.
EXTRA_EARLIEST = time(8, 0)
EXTRA_LATEST_START = time(18, 30)
EXTRA_LENGTH = timedelta(minutes=90)
# Appointments per provider and day: fuller in the past and this week, thinner further ahead.
PAST_PER_DAY = (3, 6)
NEAR_PER_DAY = (3, 5)  # the next 7 days
FAR_PER_DAY = (1, 3)
NEAR_DAYS = 7
# Of the past appointments, roughly these shares are cancelled and no-shows (at least one of each).
CANCELLED_SHARE = 0.08
NO_SHOW_SHARE = 0.07
# Long before anything the demo makes: provider_slots' "not before" for the past.
DAWN = datetime(2000, 1, 1)  # noqa: DTZ001 - a naive UTC bound, as the database keeps times
SEEDED_STAGES = ("onboarding", "active", "maintenance")
NEW_PATIENT_STAGES = ("new", "onboarding")

VIDEO_FOLLOW_UP = "Video follow-up"
CHECK_UP = "Check-up"
NEW_PATIENT = "New patient visit"
# (name, minutes, mode, buffer before, after, patient bookable, notice minutes, preparation); every type may
# be booked 56 days ahead and moved or cancelled online up to 24 hours before.
TYPES = (
    (
        VIDEO_FOLLOW_UP,
        30,
        VIDEO,
        5,
        5,
        True,
        120,
        "Find a quiet, private room with good light. Test your camera and microphone, and have your list of "
        "medicines and any home readings (blood pressure, weight, blood sugar) at hand. The link opens in "
        "your browser; you do not need an app.",
    ),
    (
        CHECK_UP,
        20,
        IN_PERSON,
        0,
        0,
        True,
        120,
        "Please arrive 10 minutes early and bring your insurance card and the medicines you take.",
    ),
    (
        NEW_PATIENT,
        45,
        IN_PERSON,
        0,
        10,
        False,
        0,
        "Please arrive 15 minutes early with a photo ID, your insurance card, the medicines you take and "
        "any recent test results or letters from other doctors.",
    ),
)
TYPE_WEIGHTS = {VIDEO_FOLLOW_UP: 35, CHECK_UP: 50, NEW_PATIENT: 15}
HORIZON_DAYS = 56
CUTOFF_MINUTES = 24 * 60
CANCEL_REASONS = (
    "The patient called: a clash with work.",
    "The patient is unwell and will call to rebook.",
    "Rebooked by phone for a later date.",
)
NOTES = (
    "Follow-up on my blood pressure readings.",
    "Questions about my new medicine.",
    "Results of my last blood test.",
    None,
    None,
    None,
)


@dataclass(frozen=True)
class ClinicWeek:
    """A clinic's provider hours (Monday–Friday, a morning and an afternoon), within its published hours."""

    doctor: tuple[Interval, ...]
    nurse: tuple[Interval, ...]
    nurse_saturday: tuple[Interval, ...]  # only where the clinic opens on Saturdays (portal_tasks' hours)
    evening: Interval  # the doctor's extra evening next week
    reminder_2h: bool


WEEKS = {
    "riverside": ClinicWeek(
        doctor=((time(8, 30), time(12)), (time(13), time(17))),
        nurse=((time(8), time(12)), (time(13), time(16, 30))),
        nurse_saturday=((time(9), time(12)),),
        evening=(time(17), time(19)),
        reminder_2h=True,
    ),
    "lakeside": ClinicWeek(
        doctor=((time(8), time(12)), (time(13), time(15, 30))),
        nurse=((time(7, 30), time(11, 30)), (time(12, 30), time(16))),
        nurse_saturday=(),
        evening=(time(16, 30), time(19)),
        reminder_2h=False,
    ),
}


def seed(
    tenant: Tenant,
    patients: list[Patient],
    staff: dict[str, User],
    rng: random.Random,
    *,
    main_patient_email: str,
) -> list[Appointment]:
    """Add the clinic's scheduling (types, hours, exceptions, a closure, appointments, a waitlist entry);
    flushes, does not commit, raises no events. Returns the appointments."""
    now = utcnow()
    today = clinic_today(tenant.timezone)
    week = WEEKS.get(tenant.slug, WEEKS["riverside"])
    doctor, nurse, desk = staff[DOCTOR], staff[NURSE], staff[FRONT_DESK]
    db.session.add(SchedulingSettings(tenant_id=tenant.id, reminder_2h=week.reminder_2h))
    types = _types(tenant)
    planner = _Planner(tenant, now, booked_by=desk)
    planner.add_week(doctor, {day: week.doctor for day in range(5)})
    planner.add_week(nurse, {**{day: week.nurse for day in range(5)}, 5: week.nurse_saturday})
    planner.close(_closure(tenant, today))
    next_monday = today + timedelta(days=7 - today.weekday())
    next_week = [d for d in (next_monday + timedelta(days=n) for n in range(5)) if d not in planner.closed]
    planner.except_(nurse, next_week[-1], TIME_OFF, None, None, "Day off")
    planner.except_(doctor, next_week[len(next_week) // 2], EXTRA_HOURS, *week.evening, "Evening clinic")

    main, waiting = _portal_patients(tenant, main_patient_email)
    video, checkup = types[VIDEO_FOLLOW_UP], types[CHECK_UP]
    planner.take(_soon_video(planner, doctor, video, today), video, main, BOOKED)
    checkup_slot = planner.first(
        doctor, checkup, today, today + timedelta(days=AHEAD_DAYS), now + CHECKUP_AFTER
    )
    planner.take(checkup_slot, checkup, main, BOOKED)
    history_day = today - timedelta(days=HISTORY_DAYS // 2)
    planner.take(
        planner.first(doctor, checkup, history_day, today, DAWN, past=True), checkup, main, COMPLETED
    )
    # The waiting patient waits for the nurse: an offer from a cancelled doctor's appointment goes to
    # whoever tries the demo's waitlist with the doctor, not to them.
    later = planner.first(
        nurse, video, today + timedelta(days=WAITLIST_DAYS + 1), today + timedelta(days=AHEAD_DAYS), now
    )
    their_booking = planner.take(later, video, waiting, BOOKED)

    others = [p for p in patients if p.id not in (main.id, waiting.id)]
    _fill(planner, rng, [doctor, nurse], types, others, today)
    _finish_past(planner, rng)
    db.session.flush()
    db.session.add(
        WaitlistEntry(
            tenant_id=tenant.id,
            patient_id=waiting.id,
            type_id=video.id,
            provider_id=nurse.id,
            earliest_day=today,
            latest_day=today + timedelta(days=WAITLIST_DAYS),
            appointment_id=their_booking.id,
            status=WAITING,
            created_at=now - timedelta(days=2),
            updated_at=now - timedelta(days=2),
        )
    )
    db.session.flush()
    return planner.rows


# --- the clinic's setup -------------------------------------------------------------------------------------


def _types(tenant: Tenant) -> dict[str, AppointmentType]:
    rows = {}
    for name, minutes, mode, before, after, bookable, notice, preparation in TYPES:
        rows[name] = AppointmentType(
            tenant_id=tenant.id,
            name=name,
            duration_minutes=minutes,
            mode=mode,
            video_link=f"https://video.example.org/{tenant.slug}/follow-up" if mode == VIDEO else None,
            preparation=preparation,
            buffer_before_minutes=before,
            buffer_after_minutes=after,
            patient_bookable=bookable,
            min_notice_minutes=notice,
            horizon_days=HORIZON_DAYS,
            reschedule_cutoff_minutes=CUTOFF_MINUTES,
            cancel_cutoff_minutes=CUTOFF_MINUTES,
        )
    db.session.add_all(rows.values())
    db.session.flush()
    return rows


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    # A holiday on a Saturday is observed on the Friday before, on a Sunday on the Monday after.
    return (
        day - timedelta(days=1)
        if day.weekday() == 5
        else day + timedelta(days=1)
        if day.weekday() == 6
        else day
    )


def us_holidays(year: int) -> list[tuple[date, str]]:
    """The US federal holidays of `year`, on the days they are observed."""
    monday, thursday = 0, 3
    return [
        (_observed(date(year, 1, 1)), "New Year's Day"),
        (_nth_weekday(year, 1, monday, 3), "Martin Luther King Jr. Day"),
        (_nth_weekday(year, 2, monday, 3), "Presidents' Day"),
        (_last_weekday(year, 5, monday), "Memorial Day"),
        (_observed(date(year, 6, 19)), "Juneteenth"),
        (_observed(date(year, 7, 4)), "Independence Day"),
        (_nth_weekday(year, 9, monday, 1), "Labor Day"),
        (_nth_weekday(year, 10, monday, 2), "Columbus Day"),
        (_observed(date(year, 11, 11)), "Veterans Day"),
        (_nth_weekday(year, 11, thursday, 4), "Thanksgiving Day"),
        (_observed(date(year, 12, 25)), "Christmas Day"),
    ]


def _closure(tenant: Tenant, today: date) -> ClinicClosure:
    """The next public holiday in the coming weeks, or (when there is none) a staff training day."""
    first, last = today + timedelta(days=CLOSURE_FIRST_DAY), today + timedelta(days=CLOSURE_LAST_DAY)
    ahead = sorted(
        (day, name)
        for year in (today.year, today.year + 1)
        for day, name in us_holidays(year)
        if first <= day <= last
    )
    if ahead:
        day, name = ahead[0]
        reason = f"{name}: public holiday, the clinic is closed"
    else:
        day = today + timedelta(days=FALLBACK_CLOSURE_DAY)
        if day.weekday() >= 5:  # Saturday and Sunday move to the Monday
            day += timedelta(days=7 - day.weekday())
        reason = "Staff training day: the clinic is closed"
    row = ClinicClosure(tenant_id=tenant.id, first_day=day, last_day=day, reason=reason)
    db.session.add(row)
    return row


def _portal_patients(tenant: Tenant, main_email: str) -> tuple[Patient, Patient]:
    """The main demo patient (the predictable portal login) and the next portal patient."""
    users = db.session.scalars(
        select(User).where(User.tenant_id == tenant.id, User.patient_id.is_not(None)).order_by(User.id)
    ).all()
    main = next(u for u in users if u.email == main_email)
    other = next(u for u in users if u.id != main.id)
    found = {
        p.id: p
        for p in db.session.scalars(
            select(Patient).where(
                Patient.tenant_id == tenant.id, Patient.id.in_([main.patient_id, other.patient_id])
            )
        )
    }
    return found[main.patient_id], found[other.patient_id]


# --- placing appointments ----------------------------------------------------------------------------------


class _Planner:
    """The clinic's hours, exceptions and closures as the slot generator reads them, and what is booked so
    far: every appointment it places is a free slot of the moment, so none overlaps another."""

    def __init__(self, tenant: Tenant, now: datetime, *, booked_by: User):
        self.tenant = tenant
        self.zone = zone_info(tenant.timezone)
        self.now = now
        self.booked_by = booked_by
        self.weeks: dict[int, dict[int, list[Interval]]] = {}
        self.exceptions: dict[int, dict[date, list[Exception_]]] = defaultdict(lambda: defaultdict(list))
        self.closed: set[date] = set()
        self.busy: dict[int, list[Span]] = defaultdict(list)
        self.patient_days: dict[int, set[date]] = defaultdict(set)
        self.rows: list[Appointment] = []
        self.final: dict[int, str] = {}  # id(row) → the status it ends with (all are inserted as booked)

    def add_week(self, provider: User, days: dict[int, tuple[Interval, ...]]) -> None:
        self.weeks[provider.id] = {weekday: list(intervals) for weekday, intervals in days.items()}
        for weekday, intervals in days.items():
            for starts, ends in intervals:
                db.session.add(
                    WeeklyHours(
                        tenant_id=self.tenant.id,
                        provider_id=provider.id,
                        weekday=weekday,
                        starts=starts,
                        ends=ends,
                    )
                )

    def close(self, closure: ClinicClosure) -> None:
        day = closure.first_day
        while day <= closure.last_day:
            self.closed.add(day)
            day += timedelta(days=1)

    def except_(
        self, provider: User, day: date, kind: str, starts: time | None, ends: time | None, note: str
    ) -> None:
        db.session.add(
            AvailabilityException(
                tenant_id=self.tenant.id,
                provider_id=provider.id,
                day=day,
                kind=kind,
                starts=starts,
                ends=ends,
                note=note,
            )
        )
        self.exceptions[provider.id][day].append(Exception_(kind, starts, ends))

    def slots(self, provider: User, kind: AppointmentType, first_day: date, last_day: date) -> list[Slot]:
        """The provider's free slots of `kind` on these local days, past ones included."""
        return provider_slots(
            provider_id=provider.id,
            week=self.weeks.get(provider.id, {}),
            exceptions=self.exceptions[provider.id],
            closed_days=self.closed,
            busy=self.busy[provider.id],
            duration=timedelta(minutes=kind.duration_minutes),
            buffer_before=timedelta(minutes=kind.buffer_before_minutes),
            buffer_after=timedelta(minutes=kind.buffer_after_minutes),
            zone=self.zone,
            earliest=DAWN,
            first_day=first_day,
            last_day=last_day,
        )

    def first(
        self,
        provider: User,
        kind: AppointmentType,
        first_day: date,
        last_day: date,
        not_before: datetime,
        *,
        past: bool = False,
    ) -> Slot:
        """The provider's first free slot of `kind` on these days starting at `not_before` or later (ended
        before now, with `past`)."""
        for slot in self.slots(provider, kind, first_day, last_day):
            if slot.starts_at >= not_before and (
                slot.ends_at <= self.now if past else slot.starts_at > self.now
            ):
                return slot
        # The windows are weeks wide and the week has hours on every weekday, so this is a bug.
        raise RuntimeError(f"no free {kind.name} for the demo between {first_day} and {last_day}")

    def day_of(self, moment: datetime) -> date:
        return to_clinic_time(moment, self.tenant.timezone).date()

    def take(self, slot: Slot, kind: AppointmentType, patient: Patient, status: str) -> Appointment:
        """Book `slot` for the patient (flushed as a booking, so the database checks it); `status` is the one
        it ends with (`_finish_past`)."""
        ends_at, blocked_from, blocked_until = blocked_span(kind, slot.starts_at)
        row = Appointment(
            tenant_id=self.tenant.id,
            patient_id=patient.id,
            provider_id=slot.provider_id,
            type_id=kind.id,
            starts_at=slot.starts_at,
            ends_at=ends_at,
            blocked_from=blocked_from,
            blocked_until=blocked_until,
            status=BOOKED,
            booked_by_id=self.booked_by.id,
        )
        row.type = kind
        db.session.add(row)
        insort(self.busy[slot.provider_id], (blocked_from, blocked_until))
        self.patient_days[patient.id].add(self.day_of(slot.starts_at))
        self.rows.append(row)
        self.final[id(row)] = status
        return row


def _soon_video(planner: _Planner, doctor: User, video: AppointmentType, today: date) -> Slot:
    """The doctor's first video slot 2 to 22 hours from now; extra hours are added when there is none (the
    weekend, a Friday evening, a holiday)."""
    earliest, latest = planner.now + SOON_AFTER, planner.now + SOON_BEFORE

    def soon() -> Slot | None:
        for slot in planner.slots(doctor, video, today, today + timedelta(days=1)):
            if earliest <= slot.starts_at <= latest:
                return slot
        return None

    found = soon()
    if found is not None:
        return found
    start = to_clinic_time(earliest, planner.tenant.timezone).replace(tzinfo=None)
    start = start.replace(second=0, microsecond=0) + timedelta(minutes=(-start.minute) % 30)
    if start.time() < EXTRA_EARLIEST:
        start = datetime.combine(start.date(), EXTRA_EARLIEST)
    elif start.time() > EXTRA_LATEST_START:
        start = datetime.combine(start.date() + timedelta(days=1), EXTRA_EARLIEST)
    planner.except_(
        doctor, start.date(), EXTRA_HOURS, start.time(), (start + EXTRA_LENGTH).time(), "Video hours"
    )
    found = soon()
    if found is None:
        raise RuntimeError(f"no video slot within 24 hours for the demo (extra hours from {start})")
    return found


def _fill(
    planner: _Planner,
    rng: random.Random,
    providers: list[User],
    types: dict[str, AppointmentType],
    patients: list[Patient],
    today: date,
) -> None:
    """A few appointments a day per provider, the past three weeks and the next three."""
    regulars = [p for p in patients if p.care_stage in SEEDED_STAGES]
    newcomers = [p for p in patients if p.care_stage in NEW_PATIENT_STAGES]
    names, weights = list(TYPE_WEIGHTS), list(TYPE_WEIGHTS.values())
    soonest = planner.now + UPCOMING_AFTER
    for provider in providers:
        for offset in range(-HISTORY_DAYS, AHEAD_DAYS + 1):
            day = today + timedelta(days=offset)
            low, high = PAST_PER_DAY if offset <= 0 else NEAR_PER_DAY if offset <= NEAR_DAYS else FAR_PER_DAY
            for _ in range(rng.randint(low, high)):
                kind = types[rng.choices(names, weights)[0]]
                open_slots = [
                    s
                    for s in planner.slots(provider, kind, day, day)
                    if s.ends_at <= planner.now or s.starts_at >= soonest
                ]
                pool = newcomers if kind.name == NEW_PATIENT else regulars
                free = [p for p in pool if day not in planner.patient_days[p.id]]
                if not open_slots or not free:
                    continue
                slot = rng.choice(open_slots)
                status = COMPLETED if slot.ends_at <= planner.now else BOOKED
                row = planner.take(slot, kind, rng.choice(free), status)
                if status == BOOKED:
                    row.patient_note = rng.choice(NOTES)


def _finish_past(planner: _Planner, rng: random.Random) -> None:
    """Flush everything as bookings (the database's no-overlap check), then give the past their outcome:
    mostly completed, some cancelled, some no-shows, at least one of each."""
    db.session.flush()
    past = [r for r in planner.rows if planner.final[id(r)] == COMPLETED]
    # The first past row is the main patient's completed check-up; it stays completed.
    others = past[1:]
    for row in others:
        draw = rng.random()
        if draw < CANCELLED_SHARE:
            planner.final[id(row)] = CANCELLED
        elif draw < CANCELLED_SHARE + NO_SHOW_SHARE:
            planner.final[id(row)] = NO_SHOW
    for status in (CANCELLED, NO_SHOW):
        if not any(planner.final[id(r)] == status for r in others):
            completed = [r for r in others if planner.final[id(r)] == COMPLETED]
            planner.final[id(rng.choice(completed))] = status
    for row in planner.rows:
        _outcome(row, planner.final[id(row)], planner, rng)


def _outcome(row: Appointment, status: str, planner: _Planner, rng: random.Random) -> None:
    now = planner.now
    if status == BOOKED:
        row.created_at = row.updated_at = now - timedelta(hours=rng.randint(1, 10 * 24))
        return
    booked = row.starts_at - timedelta(days=rng.randint(3, 20), minutes=rng.randint(0, 600))
    row.created_at = row.updated_at = booked
    row.status = status
    if status == COMPLETED:
        row.checked_in_at = row.starts_at - timedelta(minutes=rng.randint(3, 15))
        row.completed_at = min(row.ends_at + timedelta(minutes=rng.randint(0, 10)), now)
        row.updated_at = row.completed_at
    elif status == CANCELLED:
        row.cancelled_at = max(
            row.starts_at - timedelta(hours=rng.randint(3, 48)), booked + timedelta(hours=1)
        )
        row.cancelled_by_id = planner.booked_by.id
        row.cancel_reason = rng.choice(CANCEL_REASONS)
        row.sequence = 1  # the cancellation notice went out with the next sequence
        row.updated_at = row.cancelled_at
    else:  # a no-show: marked by the desk a little after the end
        row.updated_at = min(row.ends_at + timedelta(minutes=15), now)
