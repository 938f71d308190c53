"""The staff calendar: the clinic's day across providers, one provider's day and week, one appointment, and
"start a visit record" from a completed appointment.

Days are the clinic's local days (their UTC edges from healthcrm.clock), so a day on which the clocks move is
23 or 25 hours long. Reading the calendar is a read of patient data: audited (`appointment.list`,
`appointment.read`) and committed once per call.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from ..accounts.models import Tenant, User
from ..accounts.roles import STAFF_ROLES
from ..audit.services import Actor, record_event
from ..clock import clinic_day_end, clinic_day_start, local_to_utc, to_clinic_time, utcnow
from ..errors import Conflict, NotFound
from ..extensions import db
from ..permissions import require
from ..records import services as records
from ..tenancy import get_scoped, scoped
from . import booking
from .availability import parse_day, parse_time
from .booking import clinic_of
from .models import (
    APPOINTMENT_STATUSES,
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    COMPLETED,
    Appointment,
    AppointmentType,
    WeeklyHours,
)
from .slots import Slot, bookable_providers, closed_days, free_slots


@dataclass
class Column:
    """One provider's appointments on a day (cancelled ones apart)."""

    provider: User
    appointments: list[Appointment] = field(default_factory=list)
    cancelled: list[Appointment] = field(default_factory=list)
    hours: list[tuple[time, time]] = field(default_factory=list)


@dataclass
class DayView:
    day: date
    columns: list[Column]
    closed: bool
    no_shows: dict[int, int]  # patient id → no-shows

    @property
    def count(self) -> int:
        return sum(len(c.appointments) for c in self.columns)


@dataclass
class WeekView:
    provider: User
    first_day: date
    days: list[tuple[date, list[Appointment], list[Appointment]]]  # (day, appointments, cancelled)
    closed: set[date]
    no_shows: dict[int, int]


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def _appointments(tenant: Tenant, since: date, until: date, provider_ids: list[int] | None):
    """The visible appointments starting on the local days since..until (inclusive), in time order."""
    statement = (
        scoped(Appointment, tenant.id)
        .where(
            Appointment.status.in_(APPOINTMENT_STATUSES),
            Appointment.starts_at >= clinic_day_start(since, tenant.timezone),
            Appointment.starts_at < clinic_day_end(until, tenant.timezone),
        )
        .options(selectinload(Appointment.patient), selectinload(Appointment.type))
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if provider_ids is not None:
        statement = statement.where(Appointment.provider_id.in_(provider_ids))
    return list(db.session.scalars(statement))


def no_show_counts(tenant_id: int, patient_ids: set[int]) -> dict[int, int]:
    """{patient id: no-shows} for the patients on a page (one query)."""
    if not patient_ids:
        return {}
    rows = db.session.execute(
        select(Appointment.patient_id, func.count())
        .where(
            Appointment.tenant_id == tenant_id,
            Appointment.patient_id.in_(patient_ids),
            Appointment.status == "no_show",
        )
        .group_by(Appointment.patient_id)
    ).all()
    return {patient_id: count for patient_id, count in rows}


def _hours_of_day(tenant_id: int, provider_ids: list[int], day: date) -> dict[int, list[tuple[time, time]]]:
    hours: dict[int, list[tuple[time, time]]] = defaultdict(list)
    if not provider_ids:
        return hours
    for row in db.session.scalars(
        scoped(WeeklyHours, tenant_id)
        .where(WeeklyHours.provider_id.in_(provider_ids), WeeklyHours.weekday == day.weekday())
        .order_by(WeeklyHours.starts)
    ):
        hours[row.provider_id].append((row.starts, row.ends))
    return hours


def _audit_list(actor: Actor) -> None:
    record_event(actor, "appointment.list", resource_type="appointment", changed_fields=None)
    db.session.commit()


def clinic_day(actor: Actor, day: date) -> DayView:
    """Every provider's appointments on a local day: a column per provider who takes appointments or has
    one that day."""
    require(actor, "schedule.calendar")
    tenant = clinic_of(actor.tenant_id)
    rows = _appointments(tenant, day, day, None)
    providers = {p.id: p for p in bookable_providers(tenant.id)}
    missing = {row.provider_id for row in rows} - set(providers)
    if missing:
        for user in db.session.scalars(scoped(User, tenant.id).where(User.id.in_(missing))):
            providers[user.id] = user
    ordered = sorted(providers.values(), key=lambda u: (u.full_name or "", u.id))
    hours = _hours_of_day(tenant.id, list(providers), day)
    columns = {p.id: Column(p, hours=hours.get(p.id, [])) for p in ordered}
    for row in rows:
        column = columns[row.provider_id]
        (column.cancelled if row.status == CANCELLED else column.appointments).append(row)
    view = DayView(
        day=day,
        columns=list(columns.values()),
        closed=day in closed_days(tenant.id, day, day),
        no_shows=no_show_counts(tenant.id, {row.patient_id for row in rows}),
    )
    _audit_list(actor)
    return view


def _provider(actor: Actor, provider_id: int | None) -> User:
    """The provider asked for; none asked: the actor if they take appointments, else the first who does."""
    if provider_id is None:
        bookable = bookable_providers(actor.tenant_id)
        mine = [p for p in bookable if p.id == actor.user_id]
        provider_id = (mine or bookable)[0].id if bookable else actor.user_id
    provider = get_scoped(User, provider_id, actor.tenant_id) if provider_id else None
    if provider is None or provider.role not in STAFF_ROLES:
        raise NotFound("provider")
    return provider


def provider_day(actor: Actor, provider_id: int | None, day: date) -> DayView:
    """One provider's appointments on a local day (a DayView of one column)."""
    require(actor, "schedule.calendar")
    tenant = clinic_of(actor.tenant_id)
    provider = _provider(actor, provider_id)
    rows = _appointments(tenant, day, day, [provider.id])
    column = Column(provider, hours=_hours_of_day(tenant.id, [provider.id], day).get(provider.id, []))
    for row in rows:
        (column.cancelled if row.status == CANCELLED else column.appointments).append(row)
    view = DayView(
        day=day,
        columns=[column],
        closed=day in closed_days(tenant.id, day, day),
        no_shows=no_show_counts(tenant.id, {row.patient_id for row in rows}),
    )
    _audit_list(actor)
    return view


def provider_week(actor: Actor, provider_id: int | None, day: date) -> WeekView:
    """One provider's appointments in the week (Monday to Sunday) of `day`."""
    require(actor, "schedule.calendar")
    tenant = clinic_of(actor.tenant_id)
    provider = _provider(actor, provider_id)
    first = week_start(day)
    last = first + timedelta(days=6)
    rows = _appointments(tenant, first, last, [provider.id])
    by_day: dict[date, tuple[list, list]] = {first + timedelta(days=n): ([], []) for n in range(7)}
    for row in rows:
        local_day = to_clinic_time(row.starts_at, tenant.timezone).date()
        booked, cancelled = by_day.get(local_day, ([], []))
        (cancelled if row.status == CANCELLED else booked).append(row)
    view = WeekView(
        provider=provider,
        first_day=first,
        days=[(d, booked, cancelled) for d, (booked, cancelled) in by_day.items()],
        closed=closed_days(tenant.id, first, last),
        no_shows=no_show_counts(tenant.id, {row.patient_id for row in rows}),
    )
    _audit_list(actor)
    return view


def get_appointment(actor: Actor, appointment_id: int | None) -> Appointment:
    """The clinic's appointment (not a hold), audited as a read; another clinic's id is NotFound."""
    require(actor, "schedule.calendar")
    row = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if row is None or row.status not in APPOINTMENT_STATUSES:
        raise NotFound("appointment")
    record_event(
        actor, "appointment.read", resource_type="appointment", resource_id=row.id, patient_id=row.patient_id
    )
    db.session.commit()
    return row


def _record_doctor(actor: Actor, row: Appointment) -> int:
    """The record's doctor: the appointment's provider, or (a nurse's appointment) the doctor starting it."""
    doctors = {doctor.id for doctor in records.clinic_doctors(actor.tenant_id)}
    if row.provider_id in doctors:
        return row.provider_id
    if actor.user_id in doctors:
        return actor.user_id
    raise booking.SchedulingError(
        "A visit record needs a doctor: this appointment's provider is not one. Ask a doctor to start it.",
        "record",
    )


def start_visit_record(actor: Actor, appointment_id: int | None) -> int:
    """A draft medical record for a completed appointment's patient (visit time = its start, doctor = its
    provider), linked to the appointment; returns the record's id. Once per appointment: a second press
    returns the record the first one made."""
    require(actor, "record.write")
    row = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if row is None or row.status not in APPOINTMENT_STATUSES:
        raise NotFound("appointment")
    if row.record_id is not None:
        return row.record_id
    if row.status != COMPLETED:
        raise Conflict("A visit record is started from a completed appointment; complete it first.", "record")
    data = records.RecordInput(
        doctor_id=_record_doctor(actor, row),
        visit_at=row.starts_at,
        chief_complaint=row.patient_note or row.type.name,
    )
    record = records.create_record(actor, row.patient_id, data)  # commits
    # create_record commits on its own, so the link is a guarded UPDATE after it: if a second request got
    # there first, this one's draft is removed again and the first one's record is the answer.
    linked = db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == row.id,
            Appointment.tenant_id == actor.tenant_id,
            Appointment.record_id.is_(None),
        )
        .values(record_id=record.id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if linked.rowcount != 1:
        db.session.rollback()
        records.delete_record(actor, record.id)
        db.session.refresh(row)
        return row.record_id
    record_event(
        actor,
        "appointment.visit_record",
        resource_type="appointment",
        resource_id=row.id,
        patient_id=row.patient_id,
        changed_fields=["record_id"],
    )
    db.session.commit()
    return record.id


# --- staff booking and moving -------------------------------------------------------------------------------


def local_start(tenant: Tenant, day_raw: str | None, time_raw: str | None, pick: str | None = None):
    """(naive UTC start, provider id or None) from the form: a quick pick ("2031-01-07T09:30@12") wins over
    the typed date and time (the clinic's wall-clock time)."""
    provider_id = None
    if pick:
        when, _, provider_raw = pick.partition("@")
        day_raw, _, time_raw = when.partition("T")
        provider_id = int(provider_raw) if provider_raw.isdigit() else None
    day = parse_day(day_raw, "date")
    moment = parse_time(time_raw, "time")
    if moment is None:
        raise booking.SchedulingError("Enter the time.", "time")
    return local_to_utc(datetime.combine(day, moment), tenant.timezone), provider_id


def book_for_patient(
    actor: Actor,
    *,
    patient_id: int | None,
    type_id: int | None,
    provider_id: int | None,
    day: str | None,
    time_of_day: str | None,
    pick: str | None = None,
    note: str | None = None,
    overbook: bool = False,
    overbook_reason: str | None = None,
) -> Appointment:
    """Book a patient from the staff form: the clinic's wall-clock date and time, or a quick pick. An
    overbooking must say why (and needs schedule.overbook); a clash without one is booking.SlotTaken."""
    require(actor, "schedule.book")
    tenant = clinic_of(actor.tenant_id)
    if not patient_id:
        raise booking.SchedulingError("Choose the patient.", "patient_id")
    starts_at, picked_provider = local_start(tenant, day, time_of_day, pick)
    reason = (overbook_reason or "").strip() or None
    if overbook:
        require(actor, "schedule.overbook")
        if reason is None:
            raise booking.SchedulingError(
                "Say why this patient is booked over another appointment.", "overbook_reason"
            )
    return booking.book(
        actor,
        patient_id,
        type_id,
        picked_provider or provider_id,
        starts_at,
        overbook_reason=reason if overbook else None,
        note=note,
    )


def reschedule_to(
    actor: Actor,
    appointment_id: int | None,
    *,
    day: str | None,
    time_of_day: str | None,
    provider_id: int | None = None,
    pick: str | None = None,
) -> Appointment:
    """Move an appointment to the clinic's wall-clock date and time (or a quick pick), maybe to another
    provider; a clash is booking.SlotTaken with the nearest free times."""
    require(actor, "schedule.book")
    tenant = clinic_of(actor.tenant_id)
    row = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if row is None or row.status not in APPOINTMENT_STATUSES:
        raise NotFound("appointment")
    if row.status not in (BOOKED, CHECKED_IN):
        raise Conflict(f"This appointment is {row.status_label.lower()}; it cannot be moved.", "starts_at")
    starts_at, picked_provider = local_start(tenant, day, time_of_day, pick)
    return booking.reschedule(actor, row.id, starts_at, picked_provider or provider_id)


def free_times(
    actor: Actor, type_id: int | None, provider_id: int | None, day: date, *, now=None
) -> list[Slot]:
    """The chosen provider's free slots of the chosen type on a local day, notice ignored (the desk may
    book a walk-in for in ten minutes): the booking form's quick picks."""
    require(actor, "schedule.book")
    tenant = clinic_of(actor.tenant_id)
    kind = get_scoped(AppointmentType, type_id, actor.tenant_id) if type_id else None
    if kind is None or not kind.active or not provider_id:
        return []
    if get_scoped(User, provider_id, actor.tenant_id) is None:
        return []
    return free_slots(tenant.id, tenant.timezone, kind, [provider_id], day, day, now=now, ignore_notice=True)
