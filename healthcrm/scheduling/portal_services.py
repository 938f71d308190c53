"""What the patient's appointment pages read: their upcoming appointments and history, one appointment with
what they may still do with it, the free times to choose from, a hold being confirmed and the .ics of an
appointment. Every read is audited in its own transaction; the changes themselves are booking.py's.

The patient id always comes from the session; another patient's (or another clinic's) appointment or hold
is NotFound, the same answer as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_

from ..accounts.models import Tenant, User
from ..audit.services import Actor, record_event
from ..clock import clinic_today, to_clinic_time, utcnow
from ..errors import NotFound
from ..extensions import db
from ..selfcare.clinic import patient_for
from ..tenancy import get_scoped, scoped
from . import booking
from .booking import clinic_of
from .models import (
    APPOINTMENT_STATUSES,
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    COMPLETED,
    HELD,
    HOLD_RESCHEDULE,
    NO_SHOW,
    RELEASED,
    Appointment,
    AppointmentType,
)
from .slots import Slot, bookable_providers, free_slots

try:  # the .ics builder comes with another part of issue 12; until it is there the link is not offered
    from .ics import appointment_calendar
except ImportError:  # pragma: no cover - depends on which branches are merged
    appointment_calendar = None

HISTORY_LIMIT = 50
DAYS_PER_PAGE = 7


@dataclass(frozen=True)
class AppointmentLists:
    tenant: Tenant
    upcoming: list[Appointment]
    history: list[Appointment]


@dataclass(frozen=True)
class AppointmentPage:
    tenant: Tenant
    appointment: Appointment
    rules: booking.PatientRules


@dataclass(frozen=True)
class SlotDay:
    day: date  # the clinic's calendar day
    slots: list[Slot]


@dataclass
class SlotChoice:
    """The booking page: the types and providers to choose from, and the chosen week's free times."""

    tenant: Tenant
    types: list[AppointmentType]
    providers: list[User]
    kind: AppointmentType | None  # the chosen type (None: not chosen yet)
    provider_id: int | None  # None: any provider
    week_start: date
    days: list[SlotDay] = field(default_factory=list)
    previous_week: date | None = None
    next_week: date | None = None
    reschedules: Appointment | None = None  # the appointment being moved
    rules: booking.PatientRules | None = None  # what the patient may do with `reschedules`

    @property
    def any_slots(self) -> bool:
        return any(day.slots for day in self.days)

    @property
    def may_choose(self) -> bool:
        """Whether times may be chosen at all (a reschedule past its cut-off may not)."""
        return self.reschedules is None or (self.rules is not None and self.rules.can_reschedule)


@dataclass(frozen=True)
class HoldPage:
    tenant: Tenant
    hold: Appointment
    live: bool  # still held and not run out
    confirmed: Appointment | None  # the booking the hold became already (a second press)
    original: Appointment | None  # for a reschedule hold: the appointment it moves


def _audit_read(
    actor: Actor, action: str, resource_type: str, resource_id: int | None, patient_id: int
) -> None:
    record_event(actor, action, resource_type=resource_type, resource_id=resource_id, patient_id=patient_id)
    db.session.commit()


def patient_appointments(actor: Actor, patient_id: int) -> AppointmentLists:
    """The patient's upcoming appointments (soonest first) and their history (newest first), audited as
    one read (appointment.list)."""
    patient_for(actor, patient_id, "schedule.book")
    now = utcnow()
    mine = scoped(Appointment, actor.tenant_id).where(Appointment.patient_id == patient_id)
    live = Appointment.status.in_((BOOKED, CHECKED_IN))
    upcoming = list(
        db.session.scalars(mine.where(live, Appointment.ends_at > now).order_by(Appointment.starts_at))
    )
    history = list(
        db.session.scalars(
            mine.where(
                or_(
                    Appointment.status.in_((COMPLETED, CANCELLED, NO_SHOW)),
                    and_(live, Appointment.ends_at <= now),
                )
            )
            .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    _audit_read(actor, "appointment.list", "patient", patient_id, patient_id)
    return AppointmentLists(clinic_of(actor.tenant_id), upcoming, history)


def _own_visible(actor: Actor, patient_id: int, appointment_id: int | None) -> Appointment:
    """The patient's own appointment (not a hold, not a hold's leftover); NotFound for anything else."""
    patient_for(actor, patient_id, "schedule.book")
    found = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if found is None or found.patient_id != patient_id or found.status not in APPOINTMENT_STATUSES:
        raise NotFound("appointment")
    return found


def patient_appointment(actor: Actor, patient_id: int, appointment_id: int | None) -> AppointmentPage:
    """One of the patient's appointments with what they may still change themselves (appointment.view)."""
    row = _own_visible(actor, patient_id, appointment_id)
    tenant = clinic_of(actor.tenant_id)
    rules = booking.patient_rules(tenant, row)
    _audit_read(actor, "appointment.view", "appointment", row.id, patient_id)
    return AppointmentPage(tenant, row, rules)


def week_start_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def slot_choice(
    actor: Actor,
    patient_id: int,
    type_id: int | None,
    provider_id: int | None,
    week: date | None,
    *,
    reschedules_id: int | None = None,
) -> SlotChoice:
    """The booking page of the patient: the types they may book, the providers ("any" is None) and the
    free times of the chosen type in one week (the clinic's days, within the type's notice and horizon).
    For a reschedule the type is the appointment's. Audited as appointment.slots."""
    patient_for(actor, patient_id, "schedule.book")
    tenant = clinic_of(actor.tenant_id)
    today = clinic_today(tenant.timezone)
    types = list(
        db.session.scalars(
            scoped(AppointmentType, actor.tenant_id)
            .where(AppointmentType.active.is_(True), AppointmentType.patient_bookable.is_(True))
            .order_by(AppointmentType.name, AppointmentType.id)
        )
    )
    original = None
    rules = None
    if reschedules_id is not None:
        original = _own_visible(actor, patient_id, reschedules_id)
        if original.status != BOOKED:
            raise NotFound("appointment")
        rules = booking.patient_rules(tenant, original)
        kind = original.type
    else:
        kind = next((t for t in types if t.id == type_id), None)
    providers = bookable_providers(actor.tenant_id)
    if provider_id not in {p.id for p in providers}:
        provider_id = None
    first_week = week_start_of(today)
    week_start = max(week_start_of(week), first_week) if week else first_week
    choice = SlotChoice(
        tenant, types, providers, kind, provider_id, week_start, reschedules=original, rules=rules
    )
    if kind is not None:
        last_bookable = today + timedelta(days=kind.horizon_days)
        week_start = min(week_start, week_start_of(last_bookable))
        choice.week_start = week_start
        choice.previous_week = week_start - timedelta(days=7) if week_start > first_week else None
        following = week_start + timedelta(days=7)
        choice.next_week = following if following <= last_bookable else None
        if choice.may_choose:
            choice.days = _days(actor.tenant_id, tenant.timezone, kind, providers, provider_id, week_start)
    resource = ("appointment", original.id) if original else ("appointment_type", kind.id if kind else None)
    _audit_read(actor, "appointment.slots", resource[0], resource[1], patient_id)
    return choice


def _days(
    tenant_id: int,
    zone: str,
    kind: AppointmentType,
    providers: list[User],
    provider_id: int | None,
    start: date,
) -> list[SlotDay]:
    ids = [provider_id] if provider_id is not None else [p.id for p in providers]
    last = start + timedelta(days=DAYS_PER_PAGE - 1)
    by_day: dict[date, list[Slot]] = {}
    seen: set[datetime] = set()
    for slot in free_slots(tenant_id, zone, kind, ids, start, last):
        # "Any provider" offers each time once: the hold takes whoever is free at it.
        if slot.starts_at in seen:
            continue
        seen.add(slot.starts_at)
        by_day.setdefault(to_clinic_time(slot.starts_at, zone).date(), []).append(slot)
    return [SlotDay(day, slots) for day, slots in sorted(by_day.items())]


def confirmed_into(actor: Actor, hold: Appointment) -> Appointment | None:
    """The booking a hold already became (a confirm pressed twice, a replayed form), or None."""
    if hold.status in (BOOKED, CHECKED_IN):
        return hold
    if hold.status == RELEASED and hold.hold_purpose == HOLD_RESCHEDULE and hold.reschedules_id:
        # A used reschedule hold and a released one look alike; the move happened if the appointment now
        # sits at the hold's time.
        original = get_scoped(Appointment, hold.reschedules_id, actor.tenant_id)
        if (
            original is not None
            and original.status in (BOOKED, CHECKED_IN)
            and original.starts_at == hold.starts_at
            and original.provider_id == hold.provider_id
        ):
            return original
    return None


def hold_page(actor: Actor, patient_id: int, hold_id: int | None) -> HoldPage:
    """The patient's hold being confirmed (NotFound for anyone else's), audited as appointment.hold_view."""
    hold = booking.get_hold(actor, patient_id, hold_id)
    live = hold.status == HELD and hold.hold_expires_at is not None and hold.hold_expires_at > utcnow()
    original = get_scoped(Appointment, hold.reschedules_id, actor.tenant_id) if hold.reschedules_id else None
    confirmed = None if live else confirmed_into(actor, hold)
    _audit_read(actor, "appointment.hold_view", "appointment", hold.id, patient_id)
    return HoldPage(clinic_of(actor.tenant_id), hold, live, confirmed, original)


def calendar_file(actor: Actor, patient_id: int, appointment_id: int | None) -> bytes:
    """The .ics of one of the patient's appointments (METHOD REQUEST, or CANCEL once cancelled), audited
    as appointment.calendar."""
    if appointment_calendar is None:
        raise NotFound("calendar")
    row = _own_visible(actor, patient_id, appointment_id)
    tenant = clinic_of(actor.tenant_id)
    method = "CANCEL" if row.status == CANCELLED else "REQUEST"
    calendar = appointment_calendar(tenant, row, method=method)
    body = calendar.to_ical() if hasattr(calendar, "to_ical") else calendar
    _audit_read(actor, "appointment.calendar", "appointment", row.id, patient_id)
    return body if isinstance(body, bytes) else str(body).encode()


def calendar_available() -> bool:
    """Whether the .ics builder is there (it comes with another part of issue 12)."""
    return appointment_calendar is not None
