"""Booking: holds, bookings, reschedules, cancellations and the day's statuses (booked → checked in →
completed; cancelled; no-show).

No check before a write decides whether a time is free: every write that takes a provider's time goes to the
database, whose no-overlap rule (models.NO_OVERLAP_DDL) refuses a clash, and a refusal becomes `SlotTaken`
with the nearest free times. The checks made here first (the type's rules, the provider's hours) are what a
patient may ask for, not whether someone else got there first. Status changes are guarded UPDATEs
(`… WHERE status = 'booked'`), so two people pressing "check in" or a job and a person at once change it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..accounts.models import Tenant, User
from ..audit.services import Actor, record_event
from ..clock import format_clinic_time, to_clinic_time, utcnow
from ..errors import Conflict, DomainError, NotFound
from ..extensions import db
from ..permissions import can, require
from ..portal import events
from ..selfcare.clinic import patient_for
from ..tenancy import get_scoped, scoped
from .models import (
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    COMPLETED,
    EXPIRED,
    HELD,
    HOLD_BOOKING,
    HOLD_RESCHEDULE,
    NO_SHOW,
    RELEASED,
    Appointment,
    AppointmentType,
    SchedulingSettings,
)
from .slots import Slot, bookable_providers, free_slots, nearest

NOTE_MAX_CHARS = 500
REASON_MAX_CHARS = 300
# How many free times a refusal offers instead, and how far ahead it looks for them.
ALTERNATIVES = 5
ALTERNATIVES_DAYS = 14
# The event kinds this module raises (handlers: scheduling/handlers.py).
EVENT_BOOKED = "appointment.booked"
EVENT_RESCHEDULED = "appointment.rescheduled"
EVENT_CANCELLED = "appointment.cancelled"
# Staff-side status changes, by action: (from statuses, to status, the time column it sets, audit action).
TRANSITIONS = {
    "check_in": ((BOOKED,), CHECKED_IN, "checked_in_at", "appointment.check_in"),
    "complete": ((CHECKED_IN, BOOKED), COMPLETED, "completed_at", "appointment.complete"),
    "no_show": ((BOOKED,), NO_SHOW, None, "appointment.no_show"),
}


class SchedulingError(DomainError):
    """A booking request the person can fix (a time outside the rules, a missing reason)."""


class SlotTaken(Conflict):
    """The time was taken by someone else first (the database refused the overlap)."""

    def __init__(self, alternatives: list[Slot]):
        super().__init__("This time was just taken. Here are the nearest free ones.", "starts_at")
        self.alternatives = alternatives


class HoldLapsed(Conflict):
    """The hold ran out (or was used) before it was confirmed."""

    def __init__(self):
        super().__init__(
            "The time you chose was held for you for a few minutes and that time ran out. "
            "Please choose a time again.",
            "hold",
        )


class CutoffPassed(SchedulingError):
    """Too close to the appointment for the patient to change it themselves."""

    def __init__(self, message: str, phone: str | None):
        super().__init__(message, None)
        self.phone = phone


@dataclass(frozen=True)
class PatientRules:
    """What the patient may still do with one appointment, and why not."""

    can_reschedule: bool
    can_cancel: bool
    reason: str | None  # why one of them is not possible, in the patient's words


def settings_for(tenant_id: int) -> SchedulingSettings:
    """The clinic's scheduling settings (the defaults when it has chosen none; not added to the session)."""
    found = db.session.scalar(scoped(SchedulingSettings, tenant_id))
    if found is not None:
        return found
    return SchedulingSettings(tenant_id=tenant_id, reminder_2h=True, hold_minutes=10, offer_minutes=120)


def clinic_of(tenant_id: int) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("clinic")
    return tenant


def bookable_type(
    actor: Actor, type_id: int | None, error: type[SchedulingError] = SchedulingError
) -> AppointmentType:
    """The clinic's active type the actor may book (patients: only those patients may book), else `error`."""
    found = get_scoped(AppointmentType, type_id, actor.tenant_id) if type_id else None
    if found is None or not found.active:
        raise error("Choose the kind of appointment.", "type_id")
    if actor.role == "patient" and not found.patient_bookable:
        raise error("This kind of appointment is booked by the clinic; please call us.", "type_id")
    return found


def _provider_ids(actor: Actor, provider_id: int | None) -> list[int]:
    providers = [p.id for p in bookable_providers(actor.tenant_id)]
    if provider_id is None:
        return providers
    if provider_id not in providers:
        if get_scoped(User, provider_id, actor.tenant_id) is None:
            raise NotFound("provider")
        if actor.role == "patient":
            raise SchedulingError("This person does not take appointments.", "provider_id")
        return [provider_id]  # staff may book anyone
    return [provider_id]


def blocked_span(kind: AppointmentType, starts_at: datetime) -> tuple[datetime, datetime, datetime]:
    """(ends_at, blocked_from, blocked_until) of an appointment of `kind` starting at `starts_at`."""
    ends_at = starts_at + timedelta(minutes=kind.duration_minutes)
    return (
        ends_at,
        starts_at - timedelta(minutes=kind.buffer_before_minutes),
        ends_at + timedelta(minutes=kind.buffer_after_minutes),
    )


def alternatives(
    tenant_id: int, kind: AppointmentType, provider_ids: list[int], wanted: datetime, *, staff: bool = False
) -> list[Slot]:
    """The free times nearest to `wanted` (what a refusal offers instead)."""
    tenant = clinic_of(tenant_id)
    day = to_clinic_time(wanted, tenant.timezone).date()
    slots = free_slots(
        tenant_id,
        tenant.timezone,
        kind,
        provider_ids,
        day - timedelta(days=ALTERNATIVES_DAYS // 2),
        day + timedelta(days=ALTERNATIVES_DAYS),
        ignore_notice=staff,
    )
    return nearest(slots, wanted, ALTERNATIVES)


def _offered(
    tenant: Tenant, kind: AppointmentType, provider_ids: list[int], starts_at: datetime
) -> list[int]:
    """The providers among `provider_ids` for whom `starts_at` is one of the type's slots (their hours, the
    notice, the horizon; not whether someone else holds it: the database decides that)."""
    day = to_clinic_time(starts_at, tenant.timezone).date()
    slots = free_slots(tenant.id, tenant.timezone, kind, provider_ids, day, day)
    free = [s.provider_id for s in slots if s.starts_at == starts_at]
    if free:
        return free
    # Taken, or never a slot: a time in the rules that someone holds is "taken"; anything else is refused.
    return []


def _expire_stale_holds(
    tenant_id: int, provider_id: int, blocked_from: datetime, blocked_until: datetime
) -> None:
    """Expire the provider's lapsed holds over this span, in this transaction, so they no longer block it."""
    db.session.execute(
        update(Appointment)
        .where(
            Appointment.tenant_id == tenant_id,
            Appointment.provider_id == provider_id,
            Appointment.status == HELD,
            Appointment.hold_expires_at <= utcnow(),
            Appointment.blocked_from < blocked_until,
            Appointment.blocked_until > blocked_from,
        )
        .values(status=EXPIRED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _is_overlap(error: IntegrityError) -> bool:
    text = str(error.orig)
    return "appointment_overlap" in text or "appointments_no_overlap" in text


# PostgreSQL checks an exclusion constraint after inserting the index entry, so two transactions inserting
# overlapping rows at once can each wait for the other; its deadlock detector then ends one of them
# (execIndexing.c accepts that risk). That one's insert is tried again: it now waits for the other's commit
# and gets the overlap error, or succeeds if the other rolled back.
DEADLOCK_RETRIES = 5


def _is_deadlock(error: OperationalError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "40P01"


def _in_savepoint(change: Callable[[], None]) -> None:
    """Run `change` and flush it in a savepoint, again after a deadlock (see DEADLOCK_RETRIES); an
    IntegrityError (the overlap) is the caller's."""
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            with db.session.begin_nested():
                change()
                db.session.flush()
            return
        except OperationalError as error:
            if not _is_deadlock(error) or attempt == DEADLOCK_RETRIES:
                raise


def _claim(row: Appointment) -> bool:
    """Insert `row` in a savepoint; False if the database refused it as an overlap."""
    _expire_stale_holds(row.tenant_id, row.provider_id, row.blocked_from, row.blocked_until)
    try:
        _in_savepoint(lambda: db.session.add(row))
    except IntegrityError as error:
        if not _is_overlap(error):
            raise
        return False
    return True


def hold_slot(
    actor: Actor,
    patient_id: int,
    type_id: int | None,
    provider_id: int | None,
    starts_at: datetime | None,
    *,
    purpose: str = HOLD_BOOKING,
    reschedules_id: int | None = None,
    minutes: int | None = None,
) -> Appointment:
    """Hold a free slot for the patient for a few minutes while they confirm. `provider_id` None is "any
    provider": the first one free at that time. Raises SlotTaken (with alternatives) if it is not free."""
    patient = patient_for(actor, patient_id, "schedule.book")
    kind = bookable_type(actor, type_id)
    if starts_at is None:
        raise SchedulingError("Choose a time.", "starts_at")
    tenant = clinic_of(actor.tenant_id)
    candidates = _provider_ids(actor, provider_id)
    original = None
    if purpose == HOLD_RESCHEDULE:
        original = _own_appointment(actor, patient.id, reschedules_id)
        _check_patient_rule(actor, tenant, original, "reschedule")
    offered = _offered(tenant, kind, candidates, starts_at)
    if not offered:
        raise SlotTaken(alternatives(actor.tenant_id, kind, candidates, starts_at))
    settings = settings_for(actor.tenant_id)
    hold_minutes = minutes if minutes is not None else settings.hold_minutes
    for candidate in offered:
        row = _hold_row(actor.tenant_id, patient.id, kind, candidate, starts_at, hold_minutes, purpose)
        row.reschedules_id = original.id if original else None
        row.booked_by_id = actor.user_id
        if original is not None:
            row.uid = original.uid  # a move of the same booking never clashes with itself
        if _claim(row):
            record_event(
                actor,
                "appointment.hold",
                resource_type="appointment",
                resource_id=row.id,
                patient_id=patient.id,
            )
            db.session.commit()
            return row
    db.session.rollback()
    raise SlotTaken(alternatives(actor.tenant_id, kind, candidates, starts_at))


def _own_appointment(actor: Actor, patient_id: int, appointment_id: int | None) -> Appointment:
    found = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if found is None or found.patient_id != patient_id or found.status not in (BOOKED, CHECKED_IN):
        raise NotFound("appointment")
    return found


def get_hold(actor: Actor, patient_id: int, hold_id: int | None) -> Appointment:
    """The patient's own hold, live or not (404 for anyone else's); callers check its status."""
    patient_for(actor, patient_id, "schedule.book")
    hold = get_scoped(Appointment, hold_id, actor.tenant_id) if hold_id else None
    if hold is None or hold.patient_id != patient_id:
        raise NotFound("hold")
    return hold


def confirm_hold(actor: Actor, patient_id: int, hold_id: int | None, note: str | None = None) -> Appointment:
    """Turn the patient's hold into the booking (or move the booking it reschedules). A lapsed hold is
    HoldLapsed; confirming twice books once."""
    hold = get_hold(actor, patient_id, hold_id)
    if hold.status in (BOOKED, CHECKED_IN) and hold.booked_by_id == actor.user_id:
        return hold  # confirmed already (a second press, a replayed form): one booking
    if hold.status != HELD:
        raise HoldLapsed()
    note = _clean(note, NOTE_MAX_CHARS, "note", "Keep the note under {n} characters.")
    now = utcnow()
    if hold.hold_purpose == HOLD_RESCHEDULE:
        return _confirm_reschedule(actor, hold, now)
    taken = db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == hold.id,
            Appointment.tenant_id == actor.tenant_id,
            Appointment.status == HELD,
            Appointment.hold_expires_at > now,
        )
        .values(
            status=BOOKED,
            hold_expires_at=None,
            hold_purpose=None,
            patient_note=note,
            updated_at=now,
            booked_by_id=actor.user_id,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        db.session.rollback()
        raise HoldLapsed()
    db.session.refresh(hold)
    _announce(actor, hold, EVENT_BOOKED, "appointment.book")
    return hold


def _confirm_reschedule(actor: Actor, hold: Appointment, now: datetime) -> Appointment:
    original = get_scoped(Appointment, hold.reschedules_id, actor.tenant_id)
    used = db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == hold.id,
            Appointment.tenant_id == actor.tenant_id,
            Appointment.status == HELD,
            Appointment.hold_expires_at > now,
        )
        .values(status=RELEASED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1 or original is None or original.status not in (BOOKED, CHECKED_IN):
        db.session.rollback()
        raise HoldLapsed()
    previous = original.starts_at
    _move(original, hold.provider_id, hold.starts_at, hold.ends_at, hold.blocked_from, hold.blocked_until)
    _announce(actor, original, EVENT_RESCHEDULED, "appointment.reschedule", previous_starts_at=previous)
    return original


def _move(row: Appointment, provider_id: int, starts_at, ends_at, blocked_from, blocked_until) -> None:
    row.provider_id = provider_id
    row.starts_at, row.ends_at = starts_at, ends_at
    row.blocked_from, row.blocked_until = blocked_from, blocked_until
    row.sequence = (row.sequence or 0) + 1
    row.updated_at = utcnow()
    db.session.flush()


def release_hold(actor: Actor, patient_id: int, hold_id: int | None) -> None:
    """Give a hold back at once (the patient chose another time or left)."""
    hold = get_hold(actor, patient_id, hold_id)
    if hold.status != HELD:
        return
    db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == hold.id, Appointment.tenant_id == actor.tenant_id, Appointment.status == HELD
        )
        .values(status=RELEASED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    record_event(
        actor,
        "appointment.release",
        resource_type="appointment",
        resource_id=hold.id,
        patient_id=hold.patient_id,
    )
    db.session.commit()


def _announce(actor: Actor, row: Appointment, kind: str, action: str, **payload) -> None:
    """Audit, raise the portal event (tasks, notifications, emails hang off it) and commit, all at once."""
    record_event(actor, action, resource_type="appointment", resource_id=row.id, patient_id=row.patient_id)
    events.raise_event(
        actor,
        kind,
        patient_id=row.patient_id,
        subject=("appointment", row.id),
        sequence=row.sequence,
        **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in payload.items()},
    )
    events.commit()


def _clean(value: str | None, limit: int, field: str, message: str) -> str | None:
    value = (value or "").strip() or None
    if value and len(value) > limit:
        raise SchedulingError(message.format(n=limit), field)
    return value


def book(
    actor: Actor,
    patient_id: int,
    type_id: int | None,
    provider_id: int | None,
    starts_at: datetime | None,
    *,
    overbook_reason: str | None = None,
    note: str | None = None,
) -> Appointment:
    """Staff book a patient straight in (no hold): any time, in or out of the provider's hours. With an
    overbook reason the booking may overlap others on purpose (audited with the reason); without one an
    overlap is SlotTaken."""
    require(actor, "schedule.book")
    patient = patient_for(actor, patient_id, "schedule.book")
    kind = bookable_type(actor, type_id)
    if starts_at is None:
        raise SchedulingError("Choose a time.", "starts_at")
    if provider_id is None:
        raise SchedulingError("Choose who the appointment is with.", "provider_id")
    candidates = _provider_ids(actor, provider_id)
    reason = _clean(
        overbook_reason, REASON_MAX_CHARS, "overbook_reason", "Keep the reason under {n} characters."
    )
    if reason is not None:
        require(actor, "schedule.overbook")
    note = _clean(note, NOTE_MAX_CHARS, "note", "Keep the note under {n} characters.")
    ends_at, blocked_from, blocked_until = blocked_span(kind, starts_at)
    row = Appointment(
        tenant_id=actor.tenant_id,
        patient_id=patient.id,
        provider_id=candidates[0],
        type_id=kind.id,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_from=blocked_from,
        blocked_until=blocked_until,
        status=BOOKED,
        overbooked=reason is not None,
        overbook_reason=reason,
        patient_note=note,
        booked_by_id=actor.user_id,
    )
    if not _claim(row):
        db.session.rollback()
        raise SlotTaken(alternatives(actor.tenant_id, kind, candidates, starts_at, staff=True))
    if reason is not None:
        record_event(
            actor,
            "appointment.overbook",
            resource_type="appointment",
            resource_id=row.id,
            patient_id=patient.id,
            changed_fields=["overbook_reason"],
        )
    _announce(actor, row, EVENT_BOOKED, "appointment.book")
    return row


def reschedule(
    actor: Actor, appointment_id: int | None, starts_at: datetime | None, provider_id: int | None = None
) -> Appointment:
    """Staff move a booking to another time (and provider): the same booking, uid kept, sequence raised.
    A clash is SlotTaken; the old time is free the moment this commits."""
    require(actor, "schedule.book")
    row = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if row is None or row.status not in (BOOKED, CHECKED_IN):
        raise NotFound("appointment")
    if starts_at is None:
        raise SchedulingError("Choose a time.", "starts_at")
    kind = row.type
    target = provider_id or row.provider_id
    candidates = _provider_ids(actor, target)
    ends_at, blocked_from, blocked_until = blocked_span(kind, starts_at)
    previous = row.starts_at
    _expire_stale_holds(actor.tenant_id, target, blocked_from, blocked_until)
    try:
        _in_savepoint(lambda: _move(row, target, starts_at, ends_at, blocked_from, blocked_until))
    except IntegrityError as error:
        if not _is_overlap(error):
            raise
        db.session.rollback()
        raise SlotTaken(alternatives(actor.tenant_id, kind, candidates, starts_at, staff=True)) from None
    _announce(actor, row, EVENT_RESCHEDULED, "appointment.reschedule", previous_starts_at=previous)
    return row


def patient_rules(tenant: Tenant, row: Appointment, now: datetime | None = None) -> PatientRules:
    """Whether the patient may still move or cancel `row` themselves (the type's cut-offs)."""
    now = now or utcnow()
    if row.status != BOOKED or row.starts_at <= now:
        return PatientRules(False, False, "This appointment can no longer be changed here.")
    kind = row.type
    left = row.starts_at - now
    can_move = left >= timedelta(minutes=kind.reschedule_cutoff_minutes)
    can_cancel = left >= timedelta(minutes=kind.cancel_cutoff_minutes)
    reason = None
    if not (can_move and can_cancel):
        hours = _cutoff_text(kind.cancel_cutoff_minutes if not can_cancel else kind.reschedule_cutoff_minutes)
        what = (
            "cancelled" if not can_cancel and not can_move else ("cancelled" if not can_cancel else "moved")
        )
        if not can_cancel and not can_move:
            what = "moved or cancelled"
        phone = f" Please call the clinic on {tenant.phone}." if tenant.phone else " Please call the clinic."
        reason = f"Appointments of this kind cannot be {what} online within {hours} of their start.{phone}"
    return PatientRules(can_move, can_cancel, reason)


def _cutoff_text(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return "1 hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def _check_patient_rule(actor: Actor, tenant: Tenant, row: Appointment, what: str) -> None:
    if can(actor, "schedule.book"):
        return  # staff are not held to the patient's cut-offs
    rules = patient_rules(tenant, row)
    allowed = rules.can_reschedule if what == "reschedule" else rules.can_cancel
    if not allowed:
        raise CutoffPassed(rules.reason or "This appointment can no longer be changed here.", tenant.phone)


def cancel(
    actor: Actor, appointment_id: int | None, reason: str | None = None, *, patient_id: int | None = None
) -> Appointment:
    """Cancel a booking. A patient (their own only; `patient_id` from their session) within the type's
    cut-off gets CutoffPassed with the clinic's phone; cancelling twice changes nothing more."""
    row = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if row is None or row.status == HELD:
        raise NotFound("appointment")
    if can(actor, "portal.use"):
        patient_for(actor, patient_id, "schedule.book")
        if row.patient_id != patient_id:
            raise NotFound("appointment")
    else:
        require(actor, "schedule.book")
    if row.status == CANCELLED:
        return row
    if row.status != BOOKED and not can(actor, "schedule.book"):
        raise NotFound("appointment")
    tenant = clinic_of(actor.tenant_id)
    _check_patient_rule(actor, tenant, row, "cancel")
    reason = _clean(reason, REASON_MAX_CHARS, "reason", "Keep the reason under {n} characters.")
    now = utcnow()
    done = db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == row.id,
            Appointment.tenant_id == actor.tenant_id,
            Appointment.status.in_((BOOKED, CHECKED_IN)),
        )
        .values(
            status=CANCELLED,
            cancelled_at=now,
            cancelled_by_id=actor.user_id,
            cancel_reason=reason,
            sequence=Appointment.sequence + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        db.session.rollback()
        db.session.refresh(row)
        if row.status == CANCELLED:
            return row
        raise Conflict("This appointment changed meanwhile; reload the page.")
    db.session.refresh(row)
    _announce(actor, row, EVENT_CANCELLED, "appointment.cancel")
    return row


def change_status(actor: Actor, appointment_id: int | None, action: str) -> Appointment:
    """Check in, complete or mark a no-show (TRANSITIONS), once: a second press finds it done and changes
    nothing more; from a status the action does not follow, Conflict."""
    require(actor, "schedule.check_in")
    if action not in TRANSITIONS:
        raise SchedulingError("Unknown action.", "action")
    sources, target, stamp, audit_action = TRANSITIONS[action]
    row = get_scoped(Appointment, appointment_id, actor.tenant_id) if appointment_id else None
    if row is None or row.status in (HELD, EXPIRED, RELEASED):
        raise NotFound("appointment")
    if row.status == target:
        return row
    values: dict = {"status": target, "updated_at": utcnow()}
    if stamp:
        values[stamp] = utcnow()
    done = db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == row.id,
            Appointment.tenant_id == actor.tenant_id,
            Appointment.status.in_(sources),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        db.session.rollback()
        db.session.refresh(row)
        if row.status == target:
            return row
        raise Conflict(f"This appointment is {row.status_label.lower()}; it cannot be changed that way.")
    record_event(
        actor, audit_action, resource_type="appointment", resource_id=row.id, patient_id=row.patient_id
    )
    db.session.commit()
    db.session.refresh(row)
    return row


def no_show_count(tenant_id: int, patient_id: int) -> int:
    """How many appointments the patient missed without cancelling."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.tenant_id == tenant_id,
                Appointment.patient_id == patient_id,
                Appointment.status == NO_SHOW,
            )
        )
        or 0
    )


def expire_holds() -> str:
    """The periodic sweep: holds past their end stop blocking (a claim expires the ones in its way itself;
    this keeps the table honest and lets the waitlist move on to the next patient)."""
    now = utcnow()
    # Across clinics on purpose: each hold is its own clinic's row, changed by id.
    rows = db.session.execute(
        select(Appointment.id, Appointment.tenant_id, Appointment.hold_purpose)
        .where(Appointment.status == HELD, Appointment.hold_expires_at <= now)
        .execution_options(all_tenants=True)
    ).all()
    expired = 0
    for hold_id, tenant_id, _purpose in rows:
        done = db.session.execute(
            update(Appointment)
            .where(
                Appointment.id == hold_id,
                Appointment.tenant_id == tenant_id,
                Appointment.status == HELD,
                Appointment.hold_expires_at <= now,
            )
            .values(status=EXPIRED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        expired += done.rowcount
    db.session.commit()
    return f"{expired} holds expired"


def upcoming_for_patient(tenant_id: int, patient_id: int, limit: int = 3) -> list[Appointment]:
    """The patient's next booked appointments (dashboard); no audit here, the caller's page audits."""
    return list(
        db.session.scalars(
            scoped(Appointment, tenant_id)
            .where(
                Appointment.patient_id == patient_id,
                Appointment.status.in_((BOOKED, CHECKED_IN)),
                Appointment.ends_at > utcnow(),
            )
            .order_by(Appointment.starts_at)
            .limit(limit)
        )
    )


def describe_time(tenant: Tenant, row: Appointment) -> str:
    """ "Tue 08 Dec 2026, 09:00 (Europe/Berlin)": how every page and email names an appointment's time."""
    return f"{format_clinic_time(row.starts_at, tenant.timezone, '%a %d %b %Y, %H:%M')} ({tenant.timezone})"


def claim_hold_for(
    tenant_id: int,
    patient_id: int,
    kind: AppointmentType,
    provider_id: int,
    starts_at: datetime,
    minutes: int,
    purpose: str,
    uid: str | None = None,
) -> Appointment | None:
    """Hold a slot for a patient on the system's behalf (a waitlist offer), in the caller's transaction:
    the same claim as a patient's hold, so the database's no-overlap rule decides. None if it is taken.
    `uid` is the booking the hold would move (so the two never clash)."""
    row = _hold_row(tenant_id, patient_id, kind, provider_id, starts_at, minutes, purpose)
    if uid is not None:
        row.uid = uid
    return row if _claim(row) else None


def _hold_row(
    tenant_id: int,
    patient_id: int,
    kind: AppointmentType,
    provider_id: int,
    starts_at: datetime,
    minutes: int,
    purpose: str,
) -> Appointment:
    """A hold on a slot, not yet claimed (`_claim` inserts it, or the database refuses it)."""
    ends_at, blocked_from, blocked_until = blocked_span(kind, starts_at)
    return Appointment(
        tenant_id=tenant_id,
        patient_id=patient_id,
        provider_id=provider_id,
        type_id=kind.id,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_from=blocked_from,
        blocked_until=blocked_until,
        status=HELD,
        hold_purpose=purpose,
        hold_expires_at=utcnow() + timedelta(minutes=minutes),
    )
