"""Free slots: a provider's week, minus time off and clinic closures, plus extra hours, minus what is
already booked or held (with buffers), within the type's notice and horizon.

The pure part (`day_intervals`, `provider_slots`) takes plain values; `free_slots` loads them for a clinic
(a fixed number of queries, whatever the number of providers or days). Each candidate is built as a
wall-clock time on its own local day and only then converted to UTC, so a 09:00 slot is 09:00 local on the
day the clocks move, and a wall-clock time that does not exist that day (the hour skipped in spring) is not
offered. Times in and out are naive UTC, as the database keeps them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from ..accounts.models import User
from ..clock import utcnow, zone_info
from ..extensions import db
from ..tenancy import scoped
from .models import (
    BLOCKING,
    EXTRA_HOURS,
    HELD,
    TIME_OFF,
    Appointment,
    AppointmentType,
    AvailabilityException,
    ClinicClosure,
    WeeklyHours,
)

# Slots start every `min(duration, SLOT_STEP_MAX_MINUTES)` minutes from the start of each interval.
SLOT_STEP_MAX_MINUTES = 30

Interval = tuple[time, time]
Span = tuple[datetime, datetime]  # naive UTC, [from, until)


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: datetime  # naive UTC
    ends_at: datetime
    provider_id: int


@dataclass(frozen=True)
class Exception_:
    """An availability exception as the pure functions need it."""

    kind: str
    starts: time | None
    ends: time | None


def _subtract(intervals: list[Interval], cut: Interval) -> list[Interval]:
    out: list[Interval] = []
    for a, b in intervals:
        if cut[1] <= a or cut[0] >= b:
            out.append((a, b))
            continue
        if a < cut[0]:
            out.append((a, cut[0]))
        if cut[1] < b:
            out.append((cut[1], b))
    return out


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def day_intervals(
    week: dict[int, list[Interval]], day: date, exceptions: Sequence[Exception_], *, closed: bool
) -> list[Interval]:
    """A provider's working intervals on one local day (wall-clock times): the week's for its weekday,
    with extra hours added and time off taken away; none on a clinic closure."""
    if closed:
        return []
    intervals = _merge(week.get(day.weekday(), []))
    extra = [(e.starts, e.ends) for e in exceptions if e.kind == EXTRA_HOURS and e.starts and e.ends]
    intervals = _merge([*intervals, *extra])
    for e in exceptions:
        if e.kind != TIME_OFF:
            continue
        if e.starts is None or e.ends is None:
            return []
        intervals = _subtract(intervals, (e.starts, e.ends))
    return intervals


def _wall_clock_utc(day: date, moment: time, zone: ZoneInfo) -> datetime | None:
    """The naive UTC instant of a wall-clock time on a local day; None if that time does not exist that
    day (the clocks jumped over it)."""
    local = datetime.combine(day, moment, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant.replace(tzinfo=None)


def _fixed_offset(day: date, zone: ZoneInfo) -> timedelta | None:
    """The zone's UTC offset on `day` if it is the same all day (the clocks do not move), else None."""
    morning = datetime.combine(day, time(), tzinfo=zone).utcoffset()
    evening = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).utcoffset()
    noon = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
    return morning if morning == evening == noon else None


def _utc_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _clashes(busy: Sequence[Span], starts: Sequence[datetime], span: Span) -> bool:
    """Whether `span` overlaps any of `busy` (sorted by start; `starts` their starts)."""
    index = bisect_left(starts, span[1])  # busy spans starting before span ends
    for j in range(index - 1, -1, -1):
        if busy[j][1] > span[0]:
            return True
        if busy[j][0] < span[0] - MAX_BUSY_SPAN:
            break
    return False


# Busy spans longer than this are not looked back past (an appointment of more than a day is not a thing).
MAX_BUSY_SPAN = timedelta(days=1)


def provider_slots(
    *,
    provider_id: int,
    week: dict[int, list[Interval]],
    exceptions: dict[date, list[Exception_]],
    closed_days: set[date],
    busy: Sequence[Span],
    duration: timedelta,
    buffer_before: timedelta,
    buffer_after: timedelta,
    zone: ZoneInfo,
    earliest: datetime,
    first_day: date,
    last_day: date,
) -> list[Slot]:
    """One provider's free slots on the local days first_day..last_day, none starting before `earliest`
    (naive UTC: now plus the notice). `busy` are the provider's blocked spans (buffers included), sorted."""
    step = min(duration, timedelta(minutes=SLOT_STEP_MAX_MINUTES))
    starts = [span[0] for span in busy]
    slots: list[Slot] = []
    day = first_day
    while day <= last_day:
        intervals = day_intervals(week, day, exceptions.get(day, []), closed=day in closed_days)
        offset = _fixed_offset(day, zone) if intervals else None
        for opens, closes in intervals:
            moment = datetime.combine(day, opens)
            end_of_interval = datetime.combine(day, closes)
            if offset is not None:  # most days: one offset all day, plain arithmetic
                closes_utc = end_of_interval - offset
            else:  # the day the clocks move: each wall-clock time on its own
                closes_utc = _utc_of(datetime.combine(day, closes, tzinfo=zone))
            while moment + duration <= end_of_interval or (offset is None and moment < end_of_interval):
                if offset is not None:
                    start_utc: datetime | None = moment - offset
                else:
                    start_utc = _wall_clock_utc(day, moment.time(), zone)  # None: the skipped hour
                # An appointment lasts its real duration, also across the change.
                end_utc = start_utc + duration if start_utc is not None else None
                if end_utc is not None and end_utc <= closes_utc and start_utc >= earliest:
                    blocked = (start_utc - buffer_before, end_utc + buffer_after)
                    if not _clashes(busy, starts, blocked):
                        slots.append(Slot(start_utc, end_utc, provider_id))
                moment += step
        day += timedelta(days=1)
    return slots


# --- loading a clinic's -------------------------------------------------------------------------------------


def bookable_providers(tenant_id: int) -> list[User]:
    """The clinic's active staff who have weekly hours (or extra hours), by name."""
    with_hours = select(WeeklyHours.provider_id).where(WeeklyHours.tenant_id == tenant_id)
    with_extra = select(AvailabilityException.provider_id).where(
        AvailabilityException.tenant_id == tenant_id, AvailabilityException.kind == EXTRA_HOURS
    )
    return list(
        db.session.scalars(
            scoped(User, tenant_id)
            .where(User.active.is_(True), or_(User.id.in_(with_hours), User.id.in_(with_extra)))
            .order_by(User.full_name, User.id)
        )
    )


def busy_spans(
    tenant_id: int, provider_ids: Sequence[int], since: datetime, until: datetime, now: datetime
) -> dict[int, list[Span]]:
    """What occupies each provider's time between since and until: bookings and live holds (expired holds
    do not count), overbookings too (a patient is not offered a time someone was squeezed into)."""
    rows = db.session.execute(
        select(Appointment.provider_id, Appointment.blocked_from, Appointment.blocked_until)
        .where(
            Appointment.tenant_id == tenant_id,
            Appointment.provider_id.in_(provider_ids),
            Appointment.status.in_(BLOCKING),
            or_(Appointment.status != HELD, Appointment.hold_expires_at > now),
            Appointment.blocked_from < until,
            Appointment.blocked_until > since - MAX_BUSY_SPAN,
        )
        .order_by(Appointment.provider_id, Appointment.blocked_from)
    ).all()
    spans: dict[int, list[Span]] = defaultdict(list)
    for provider_id, blocked_from, blocked_until in rows:
        spans[provider_id].append((blocked_from, blocked_until))
    return spans


def free_slots(
    tenant_id: int,
    zone_name: str | None,
    appointment_type: AppointmentType,
    provider_ids: Sequence[int],
    first_day: date,
    last_day: date,
    *,
    now: datetime | None = None,
    ignore_notice: bool = False,
) -> list[Slot]:
    """The free slots of a type with these providers on local days first_day..last_day, in time order,
    cut to the type's notice and horizon (staff booking passes `ignore_notice`: the desk may book a walk-in
    for in ten minutes). Five queries, whatever the number of providers or days."""
    now = now or utcnow()
    zone = zone_info(zone_name)
    today = now.replace(tzinfo=UTC).astimezone(zone).date()
    if not ignore_notice:
        last_day = min(last_day, today + timedelta(days=appointment_type.horizon_days))
    first_day = max(first_day, today)
    if first_day > last_day or not provider_ids:
        return []
    earliest = now if ignore_notice else now + timedelta(minutes=appointment_type.min_notice_minutes)

    weeks: dict[int, dict[int, list[Interval]]] = defaultdict(lambda: defaultdict(list))
    for row in db.session.scalars(
        scoped(WeeklyHours, tenant_id).where(WeeklyHours.provider_id.in_(provider_ids))
    ):
        weeks[row.provider_id][row.weekday].append((row.starts, row.ends))
    exceptions: dict[int, dict[date, list[Exception_]]] = defaultdict(lambda: defaultdict(list))
    for row in db.session.scalars(
        scoped(AvailabilityException, tenant_id).where(
            AvailabilityException.provider_id.in_(provider_ids),
            AvailabilityException.day >= first_day,
            AvailabilityException.day <= last_day,
        )
    ):
        exceptions[row.provider_id][row.day].append(Exception_(row.kind, row.starts, row.ends))
    closed = closed_days(tenant_id, first_day, last_day)
    # The local days' edges in UTC, a day wide on each side for zones far from UTC.
    since = datetime.combine(first_day, time()) - timedelta(days=1)
    until = datetime.combine(last_day, time()) + timedelta(days=2)
    busy = busy_spans(tenant_id, provider_ids, since, until, now)

    slots: list[Slot] = []
    for provider_id in provider_ids:
        slots.extend(
            provider_slots(
                provider_id=provider_id,
                week=weeks.get(provider_id, {}),
                exceptions=exceptions.get(provider_id, {}),
                closed_days=closed,
                busy=busy.get(provider_id, []),
                duration=timedelta(minutes=appointment_type.duration_minutes),
                buffer_before=timedelta(minutes=appointment_type.buffer_before_minutes),
                buffer_after=timedelta(minutes=appointment_type.buffer_after_minutes),
                zone=zone,
                earliest=earliest,
                first_day=first_day,
                last_day=last_day,
            )
        )
    slots.sort()
    return slots


def closed_days(tenant_id: int, first_day: date, last_day: date) -> set[date]:
    """The local days in first_day..last_day on which the whole clinic is closed."""
    days: set[date] = set()
    for closure in db.session.scalars(
        scoped(ClinicClosure, tenant_id).where(
            ClinicClosure.first_day <= last_day, ClinicClosure.last_day >= first_day
        )
    ):
        day = max(closure.first_day, first_day)
        while day <= min(closure.last_day, last_day):
            days.add(day)
            day += timedelta(days=1)
    return days


def nearest(slots: Sequence[Slot], wanted: datetime, count: int) -> list[Slot]:
    """The `count` slots closest in time to `wanted`, in time order."""
    return sorted(sorted(slots, key=lambda s: (abs(s.starts_at - wanted), s.starts_at))[:count])
