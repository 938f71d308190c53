"""The waitlist: a patient asks for an earlier time (a type, a provider or any, a range of days); when a
slot frees, the first waiting patient is offered it, held for them, by email and in the portal; if they do
not take it in time (or say no), the next one is.

One offer at a time per slot, under any concurrency: an offer is a hold (an Appointment row, HELD), claimed
like any other, so the database's no-overlap rule refuses a second hold of the same time; and the entry
moves WAITING → OFFERED with a guarded UPDATE first, so two offers of one slot racing for the same patient
cannot both pass. Taking an offer is a guarded UPDATE of the offer (open → taken) while it is live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..accounts.models import Tenant, User
from ..audit.services import Actor, record_event
from ..clock import clinic_today, format_clinic_time, to_clinic_time, utcnow
from ..counters import insert_unless_exists
from ..errors import Conflict, NotFound
from ..extensions import db
from ..jobs.queue import enqueue, task
from ..portal import events
from ..portal.models import PortalEvent
from ..portal.notifications import notify
from ..selfcare.clinic import patient_for
from ..tenancy import get_scoped, scoped
from . import booking
from .models import (
    BOOKED,
    EXPIRED,
    HELD,
    HOLD_OFFER,
    NOTICE_OFFER,
    OFFER_DECLINED,
    OFFER_LAPSED,
    OFFER_OPEN,
    OFFER_TAKEN,
    OFFER_WITHDRAWN,
    OFFERED,
    RELEASED,
    WAITING,
    WAITLIST_BOOKED,
    WAITLIST_EXPIRED,
    WITHDRAWN,
    Appointment,
    AppointmentNotice,
    AppointmentType,
    WaitlistEntry,
    WaitlistOffer,
)
from .slots import bookable_providers

log = logging.getLogger(__name__)

OPEN_ENTRY = (WAITING, OFFERED)
# The range the join form suggests: from today, this many days.
DEFAULT_RANGE_DAYS = 14
# How many waiting entries one freed slot looks at (the first that fits gets it).
CANDIDATES = 50
EVENT_OFFERED = "waitlist.offered"
OFFER_EMAIL_JOB = "scheduling.waitlist_offer_email"


class WaitlistError(booking.SchedulingError):
    """A waitlist request the patient can fix (shown at `field`, 422)."""


class OfferEnded(Conflict):
    """The offer lapsed, was declined or went otherwise before it was taken."""

    def __init__(self):
        super().__init__(
            "This time is no longer held for you. You are still on the waitlist; we will tell you when "
            "another time comes free.",
            "offer",
        )


# --- joining, withdrawing, reading -----------------------------------------------------------------------


def _check_provider(actor: Actor, provider_id: int | None) -> None:
    if provider_id is None:
        return
    if provider_id not in {p.id for p in bookable_providers(actor.tenant_id)}:
        if get_scoped(User, provider_id, actor.tenant_id) is None:
            raise NotFound("provider")
        raise WaitlistError("This person does not take appointments.", "provider_id")


def _check_days(tenant: Tenant, kind: AppointmentType, earliest: date | None, latest: date | None) -> None:
    if earliest is None:
        raise WaitlistError("Choose the first day that would suit you.", "earliest_day")
    if latest is None:
        raise WaitlistError("Choose the last day that would suit you.", "latest_day")
    today = clinic_today(tenant.timezone)
    if earliest < today:
        raise WaitlistError("The first day cannot be in the past.", "earliest_day")
    if earliest > latest:
        raise WaitlistError("The last day must be on or after the first day.", "latest_day")
    last = today + timedelta(days=kind.horizon_days)
    if latest > last:
        raise WaitlistError(
            f"This kind of appointment can be booked up to {kind.horizon_days} days ahead: choose a last "
            f"day until {last.strftime('%d %b %Y')}.",
            "latest_day",
        )


def _booking_to_move(actor: Actor, patient_id: int, kind: AppointmentType, appointment_id: int | None):
    if appointment_id is None:
        return None
    found = get_scoped(Appointment, appointment_id, actor.tenant_id)
    if found is None or found.patient_id != patient_id or found.status != BOOKED:
        raise NotFound("appointment")
    if found.starts_at <= utcnow():
        raise WaitlistError("That appointment has already begun.", "appointment_id")
    if found.type_id != kind.id:
        raise WaitlistError(
            "That appointment is of another kind: choose the same kind to move it earlier.", "appointment_id"
        )
    return found


def join_waitlist(
    actor: Actor,
    patient_id: int,
    type_id: int | None,
    provider_id: int | None,
    earliest_day: date | None,
    latest_day: date | None,
    appointment_id: int | None = None,
) -> WaitlistEntry:
    """Put the patient on the waitlist for `type_id` with `provider_id` (None: anyone) between two of the
    clinic's days; with `appointment_id`, a booking of theirs they would like earlier (an offer moves it).
    One open entry per patient and type: the database's partial unique index decides, even at once."""
    patient = patient_for(actor, patient_id, "schedule.book")
    tenant = booking.clinic_of(actor.tenant_id)
    kind = booking.bookable_type(actor, type_id, WaitlistError)
    _check_provider(actor, provider_id)
    _check_days(tenant, kind, earliest_day, latest_day)
    moving = _booking_to_move(actor, patient.id, kind, appointment_id)
    entry = WaitlistEntry(
        tenant_id=actor.tenant_id,
        patient_id=patient.id,
        type_id=kind.id,
        provider_id=provider_id,
        earliest_day=earliest_day,
        latest_day=latest_day,
        appointment_id=moving.id if moving else None,
        status=WAITING,
    )
    try:
        with db.session.begin_nested():
            db.session.add(entry)
            db.session.flush()
    except IntegrityError as error:
        if "waitlist_entries" not in str(error.orig):
            raise
        db.session.rollback()
        raise WaitlistError(
            "You are on the waitlist for this kind of appointment already. Withdraw that request first to "
            "ask for other days.",
            "type_id",
        ) from None
    record_event(
        actor, "waitlist.join", resource_type="waitlist_entry", resource_id=entry.id, patient_id=patient.id
    )
    db.session.commit()
    return entry


def _own_entry(actor: Actor, patient_id: int, entry_id: int | None) -> WaitlistEntry:
    patient_for(actor, patient_id, "schedule.book")
    found = get_scoped(WaitlistEntry, entry_id, actor.tenant_id) if entry_id else None
    if found is None or found.patient_id != patient_id:
        raise NotFound("waitlist entry")
    db.session.refresh(found)
    return found


def withdraw(actor: Actor, patient_id: int, entry_id: int | None) -> WaitlistEntry:
    """Take the patient off the waitlist (twice changes nothing more). An open offer of theirs goes back
    and its slot is offered to the next waiting patient."""
    entry = _own_entry(actor, patient_id, entry_id)
    if entry.status not in OPEN_ENTRY:
        return entry
    now = utcnow()
    done = db.session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.id == entry.id,
            WaitlistEntry.tenant_id == actor.tenant_id,
            WaitlistEntry.status.in_(OPEN_ENTRY),
        )
        .values(status=WITHDRAWN, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        db.session.rollback()
        db.session.refresh(entry)
        return entry
    freed = []
    for offer in db.session.scalars(
        scoped(WaitlistOffer, actor.tenant_id).where(
            WaitlistOffer.entry_id == entry.id, WaitlistOffer.status == OFFER_OPEN
        )
    ):
        if _end_offer(offer, OFFER_WITHDRAWN, RELEASED, now):
            freed.append(offer)
    record_event(
        actor,
        "waitlist.withdraw",
        resource_type="waitlist_entry",
        resource_id=entry.id,
        patient_id=patient_id,
    )
    for offer in freed:
        _offer_slot(actor.tenant_id, offer.provider_id, offer.type_id, offer.starts_at)
    events.commit()
    db.session.refresh(entry)
    return entry


@dataclass
class WaitlistView:
    """What the patient's waitlist page shows: their entries (open first), their open offers, and what the
    join form offers (types, providers, bookings to move, suggested days)."""

    zone: str
    today: date
    entries: list[WaitlistEntry]
    open_offers: dict[int, WaitlistOffer]  # by entry id
    types: list[AppointmentType]
    providers: list[User]
    bookings: list[Appointment]
    default_latest: date
    labels: dict[int, str] = field(default_factory=dict)  # a booking's time, by id

    def offer_for(self, entry_id: int) -> WaitlistOffer | None:
        return self.open_offers.get(entry_id)


def patient_waitlist(actor: Actor, patient_id: int) -> WaitlistView:
    """The patient's waitlist (audited read), with what the join form needs."""
    patient = patient_for(actor, patient_id, "schedule.book")
    tenant = booking.clinic_of(actor.tenant_id)
    entries = list(
        db.session.scalars(
            scoped(WaitlistEntry, actor.tenant_id)
            .where(WaitlistEntry.patient_id == patient.id)
            .order_by(WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc())
            .limit(30)
        )
    )
    entries.sort(key=lambda e: e.status not in OPEN_ENTRY)  # open ones first, newest first within
    offers = {
        offer.entry_id: offer
        for offer in db.session.scalars(
            scoped(WaitlistOffer, actor.tenant_id).where(
                WaitlistOffer.entry_id.in_([e.id for e in entries]),
                WaitlistOffer.status == OFFER_OPEN,
                WaitlistOffer.expires_at > utcnow(),
            )
        )
    }
    types = list(
        db.session.scalars(
            scoped(AppointmentType, actor.tenant_id)
            .where(AppointmentType.active.is_(True), AppointmentType.patient_bookable.is_(True))
            .order_by(AppointmentType.name)
        )
    )
    bookings = booking.upcoming_for_patient(actor.tenant_id, patient.id, limit=10)
    bookings = [b for b in bookings if b.status == BOOKED]
    today = clinic_today(tenant.timezone)
    record_event(
        actor, "waitlist.view", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    return WaitlistView(
        zone=tenant.timezone,
        today=today,
        entries=entries,
        open_offers=offers,
        types=types,
        providers=bookable_providers(actor.tenant_id),
        bookings=bookings,
        default_latest=today + timedelta(days=DEFAULT_RANGE_DAYS),
        labels={b.id: booking.describe_time(tenant, b) for b in bookings},
    )


@dataclass
class OfferView:
    """One offer as its page shows it."""

    offer: WaitlistOffer
    entry: WaitlistEntry
    zone: str
    when: str  # "Tue 07 Jan 2031, 10:00 (Europe/Berlin)"
    held_until: str  # "10:00", or "Tue 07 Jan, 10:00" when the hold ends on another day
    is_live: bool
    moves: Appointment | None  # the booking taking it would move
    moves_when: str | None


def _own_offer(actor: Actor, patient_id: int, offer_id: int | None) -> WaitlistOffer:
    patient_for(actor, patient_id, "schedule.book")
    offer = get_scoped(WaitlistOffer, offer_id, actor.tenant_id) if offer_id else None
    if offer is None or offer.entry.patient_id != patient_id:
        raise NotFound("offer")
    # What this session read before may be stale (another request or job changed it since): read it anew.
    db.session.refresh(offer)
    db.session.refresh(offer.entry)
    return offer


def patient_offer(actor: Actor, patient_id: int, offer_id: int | None) -> OfferView:
    """One of the patient's offers (audited read); another's id is NotFound."""
    offer = _own_offer(actor, patient_id, offer_id)
    tenant = booking.clinic_of(actor.tenant_id)
    entry = offer.entry
    moves = entry.appointment if entry.appointment_id else None
    record_event(
        actor,
        "waitlist.offer_view",
        resource_type="waitlist_offer",
        resource_id=offer.id,
        patient_id=patient_id,
    )
    db.session.commit()
    return OfferView(
        offer=offer,
        entry=entry,
        zone=tenant.timezone,
        when=_describe(tenant, offer.starts_at),
        held_until=_held_until(tenant, offer),
        is_live=offer.status == OFFER_OPEN and offer.expires_at > utcnow(),
        moves=moves,
        moves_when=booking.describe_time(tenant, moves) if moves is not None else None,
    )


def _describe(tenant: Tenant, starts_at: datetime) -> str:
    return f"{format_clinic_time(starts_at, tenant.timezone, '%a %d %b %Y, %H:%M')} ({tenant.timezone})"


def _held_until(tenant: Tenant, offer: WaitlistOffer) -> str:
    """When the offer's hold ends: the clock time, with its day when that is not the offered time's day
    ("Wed 08 Jan 2031, 10:00 ... held until 10:00" would read as the visit's own time)."""
    zone = tenant.timezone
    same_day = to_clinic_time(offer.expires_at, zone).date() == to_clinic_time(offer.starts_at, zone).date()
    return format_clinic_time(offer.expires_at, zone, "%H:%M" if same_day else "%a %d %b, %H:%M")


# --- offering a freed slot -------------------------------------------------------------------------------


def _candidates(tenant_id: int, provider_id: int, type_id: int, starts_at: datetime, day: date) -> list[int]:
    """The waiting entries a slot fits, first come first: the type, the provider (or any), the day in
    their range, earlier than the booking they would move, and not offered this very slot before."""
    offered_before = exists().where(
        WaitlistOffer.tenant_id == tenant_id,
        WaitlistOffer.entry_id == WaitlistEntry.id,
        WaitlistOffer.provider_id == provider_id,
        WaitlistOffer.starts_at == starts_at,
    )
    statement = (
        select(WaitlistEntry.id)
        .outerjoin(
            Appointment,
            and_(Appointment.id == WaitlistEntry.appointment_id, Appointment.tenant_id == tenant_id),
        )
        .where(
            WaitlistEntry.tenant_id == tenant_id,
            WaitlistEntry.type_id == type_id,
            WaitlistEntry.status == WAITING,
            or_(WaitlistEntry.provider_id.is_(None), WaitlistEntry.provider_id == provider_id),
            WaitlistEntry.earliest_day <= day,
            WaitlistEntry.latest_day >= day,
            or_(
                WaitlistEntry.appointment_id.is_(None),
                and_(Appointment.status == BOOKED, Appointment.starts_at > starts_at),
            ),
            ~offered_before,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(CANDIDATES)
    )
    return list(db.session.scalars(statement))


def _offer_slot(tenant_id: int, provider_id: int, type_id: int, starts_at: datetime) -> WaitlistOffer | None:
    """Offer the slot to the first waiting patient it fits, in the caller's transaction (not committed):
    the entry claimed WAITING → OFFERED, the slot held for them, the offer, its audit and its event. None
    when nobody waits for it, or the slot is held or booked already (a second offer of it: nothing)."""
    tenant = db.session.get(Tenant, tenant_id)
    kind = get_scoped(AppointmentType, type_id, tenant_id)
    now = utcnow()
    if tenant is None or kind is None or not kind.active or starts_at <= now:
        return None
    day = to_clinic_time(starts_at, tenant.timezone).date()
    minutes = booking.settings_for(tenant_id).offer_minutes
    for entry_id in _candidates(tenant_id, provider_id, type_id, starts_at, day):
        savepoint = db.session.begin_nested()
        claimed = db.session.execute(
            update(WaitlistEntry)
            .where(
                WaitlistEntry.id == entry_id,
                WaitlistEntry.tenant_id == tenant_id,
                WaitlistEntry.status == WAITING,
            )
            .values(status=OFFERED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # offered meanwhile (another slot, or this one by a racing call)
            savepoint.rollback()
            continue
        entry = get_scoped(WaitlistEntry, entry_id, tenant_id)
        db.session.refresh(entry)
        uid = entry.appointment.uid if entry.appointment_id else None
        hold = booking.claim_hold_for(
            tenant_id, entry.patient_id, kind, provider_id, starts_at, minutes, HOLD_OFFER, uid=uid
        )
        if hold is None:  # the slot is someone's already: there is nothing to offer
            savepoint.rollback()
            db.session.expire(entry)  # it read OFFERED inside the savepoint
            return None
        if hold.hold_expires_at > starts_at:  # a slot that starts sooner is held until it starts
            hold.hold_expires_at = starts_at
            db.session.flush()
        offer = WaitlistOffer(
            tenant_id=tenant_id,
            entry_id=entry.id,
            hold_id=hold.id,
            provider_id=provider_id,
            type_id=type_id,
            starts_at=starts_at,
            offered_at=now,
            expires_at=hold.hold_expires_at,
            status=OFFER_OPEN,
        )
        db.session.add(offer)
        db.session.flush()
        savepoint.commit()
        system = Actor.system(tenant_id)
        record_event(
            system,
            "waitlist.offer",
            resource_type="waitlist_offer",
            resource_id=offer.id,
            patient_id=entry.patient_id,
        )
        events.raise_event(
            system,
            EVENT_OFFERED,
            patient_id=entry.patient_id,
            tenant_id=tenant_id,
            subject=("waitlist_offer", offer.id),
        )
        return offer
    return None


def offer_freed_slot(
    tenant_id: int, provider_id: int, type_id: int, starts_at: datetime
) -> WaitlistOffer | None:
    """Offer a freed slot to the first waiting patient it fits, and commit (the email and the in-app
    notice follow from the `waitlist.offered` event). None when nobody waits for it or it is taken."""
    offer = _offer_slot(tenant_id, provider_id, type_id, starts_at)
    events.commit()
    return offer


def _end_offer(offer: WaitlistOffer, status: str, hold_status: str, now: datetime) -> bool:
    """Close an open offer (guarded), give its hold back and put its entry back in the queue."""
    done = db.session.execute(
        update(WaitlistOffer)
        .where(
            WaitlistOffer.id == offer.id,
            WaitlistOffer.tenant_id == offer.tenant_id,
            WaitlistOffer.status == OFFER_OPEN,
        )
        .values(status=status, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        return False
    db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == offer.hold_id,
            Appointment.tenant_id == offer.tenant_id,
            Appointment.status == HELD,
        )
        .values(status=hold_status, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.id == offer.entry_id,
            WaitlistEntry.tenant_id == offer.tenant_id,
            WaitlistEntry.status == OFFERED,
        )
        .values(status=WAITING, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


# --- the patient's answer --------------------------------------------------------------------------------


def accept_offer(actor: Actor, patient_id: int, offer_id: int | None) -> Appointment:
    """Take the offered time while it is held: the hold becomes the booking, or, when the entry moves a
    booking, that booking moves to it (same uid, sequence raised) and its old time is offered on. Taking it
    twice books once; a lapsed offer is OfferEnded."""
    offer = _own_offer(actor, patient_id, offer_id)
    entry = offer.entry
    moving = entry.appointment if entry.appointment_id else None
    if moving is not None:
        db.session.refresh(moving)
    if offer.status == OFFER_TAKEN:
        return moving if moving is not None else offer.hold
    now = utcnow()
    if offer.status != OFFER_OPEN or offer.expires_at <= now:
        raise OfferEnded()
    if moving is not None and moving.status != BOOKED:
        raise WaitlistError(
            "The appointment this would move is no longer booked. Say no to this offer, or call the clinic.",
            "offer",
        )
    taken = db.session.execute(
        update(WaitlistOffer)
        .where(
            WaitlistOffer.id == offer.id,
            WaitlistOffer.tenant_id == actor.tenant_id,
            WaitlistOffer.status == OFFER_OPEN,
            WaitlistOffer.expires_at > now,
        )
        .values(status=OFFER_TAKEN, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    hold_values: dict = (
        {"status": RELEASED, "updated_at": now}
        if moving is not None
        else {
            "status": BOOKED,
            "hold_expires_at": None,
            "hold_purpose": None,
            "updated_at": now,
            "booked_by_id": actor.user_id,
        }
    )
    used = db.session.execute(
        update(Appointment)
        .where(
            Appointment.id == offer.hold_id,
            Appointment.tenant_id == actor.tenant_id,
            Appointment.status == HELD,
            Appointment.hold_expires_at > now,
        )
        .values(**hold_values)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1 or used.rowcount != 1:
        db.session.rollback()
        raise OfferEnded()
    db.session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry.id, WaitlistEntry.tenant_id == actor.tenant_id)
        .values(status=WAITLIST_BOOKED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    record_event(
        actor, "waitlist.accept", resource_type="waitlist_offer", resource_id=offer.id, patient_id=patient_id
    )
    hold = offer.hold
    db.session.refresh(hold)
    if moving is None:
        booking._announce(actor, hold, booking.EVENT_BOOKED, "appointment.book")
        return hold
    before = (moving.provider_id, moving.starts_at)
    booking._move(
        moving, hold.provider_id, hold.starts_at, hold.ends_at, hold.blocked_from, hold.blocked_until
    )
    # The time it leaves is free now: the next waiting patient may want it.
    _offer_slot(actor.tenant_id, before[0], moving.type_id, before[1])
    booking._announce(
        actor, moving, booking.EVENT_RESCHEDULED, "appointment.reschedule", previous_starts_at=before[1]
    )
    return moving


def decline_offer(actor: Actor, patient_id: int, offer_id: int | None) -> WaitlistOffer:
    """Say no to an offer: the hold goes back, the patient keeps waiting (for other times), and the same
    slot is offered to the next waiting patient. Twice changes nothing more."""
    offer = _own_offer(actor, patient_id, offer_id)
    if offer.status != OFFER_OPEN:
        return offer
    now = utcnow()
    if not _end_offer(offer, OFFER_DECLINED, RELEASED, now):
        db.session.rollback()
        db.session.refresh(offer)
        return offer
    record_event(
        actor, "waitlist.decline", resource_type="waitlist_offer", resource_id=offer.id, patient_id=patient_id
    )
    _offer_slot(actor.tenant_id, offer.provider_id, offer.type_id, offer.starts_at)
    events.commit()
    db.session.refresh(offer)
    return offer


# --- the periodic sweep ----------------------------------------------------------------------------------


def lapse_offers() -> str:
    """The periodic "scheduling.offers": open offers past their time lapse (hold expired, entry waiting
    again) and their slot goes to the next waiting patient; entries whose last day has passed end."""
    now = utcnow()
    # Across clinics on purpose: each offer is then closed within its own clinic, by id.
    due = db.session.execute(
        select(WaitlistOffer.id, WaitlistOffer.tenant_id)
        .where(WaitlistOffer.status == OFFER_OPEN, WaitlistOffer.expires_at <= now)
        .order_by(WaitlistOffer.id)
        .execution_options(all_tenants=True)
    ).all()
    db.session.rollback()
    lapsed = offered = 0
    for offer_id, tenant_id in due:
        offer = get_scoped(WaitlistOffer, offer_id, tenant_id)
        if offer is None or not _end_offer(offer, OFFER_LAPSED, EXPIRED, now):
            db.session.rollback()
            continue
        lapsed += 1
        record_event(
            Actor.system(tenant_id),
            "waitlist.lapse",
            resource_type="waitlist_offer",
            resource_id=offer.id,
            patient_id=offer.entry.patient_id,
        )
        offered += _offer_slot(tenant_id, offer.provider_id, offer.type_id, offer.starts_at) is not None
        events.commit()
    ended = _end_past_entries(now)
    return f"{lapsed} offers lapsed, {offered} offered on, {ended} waitlist entries ended"


def _end_past_entries(now: datetime) -> int:
    # Prefilter by the UTC date (a day either side of any zone), then decide by each clinic's own day.
    rows = db.session.execute(
        select(WaitlistEntry.id, WaitlistEntry.tenant_id, WaitlistEntry.patient_id, WaitlistEntry.latest_day)
        .where(WaitlistEntry.status == WAITING, WaitlistEntry.latest_day < now.date() + timedelta(days=1))
        .execution_options(all_tenants=True)
    ).all()
    ended = 0
    today: dict[int, date] = {}
    for entry_id, tenant_id, patient_id, latest_day in rows:
        if tenant_id not in today:
            tenant = db.session.get(Tenant, tenant_id)
            today[tenant_id] = clinic_today(tenant.timezone if tenant else None)
        if latest_day >= today[tenant_id]:
            continue
        done = db.session.execute(
            update(WaitlistEntry)
            .where(
                WaitlistEntry.id == entry_id,
                WaitlistEntry.tenant_id == tenant_id,
                WaitlistEntry.status == WAITING,
            )
            .values(status=WAITLIST_EXPIRED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:
            ended += 1
            record_event(
                Actor.system(tenant_id),
                "waitlist.expire",
                resource_type="waitlist_entry",
                resource_id=entry_id,
                patient_id=patient_id,
            )
    db.session.commit()
    return ended


# --- what the events set off -----------------------------------------------------------------------------


@events.handles(booking.EVENT_CANCELLED)
def offer_cancelled_slot(event: PortalEvent) -> None:
    """A cancelled appointment still to come frees its slot: offer it to the first waiting patient."""
    row = get_scoped(Appointment, event.subject_id, event.tenant_id) if event.subject_id else None
    if row is None or row.starts_at <= utcnow():
        return
    if _offer_slot(event.tenant_id, row.provider_id, row.type_id, row.starts_at) is not None:
        # The offer's own event is queued once this handling has committed.
        events.after_handling(events.dispatch)


@events.handles(EVENT_OFFERED)
def tell_about_offer(event: PortalEvent) -> None:
    """The waiting patient hears of the offer in the portal, and by email (a job, after commit)."""
    offer = get_scoped(WaitlistOffer, event.subject_id, event.tenant_id) if event.subject_id else None
    user = _portal_user(event.tenant_id, event.patient_id)
    if offer is None or user is None:
        return
    tenant = booking.clinic_of(event.tenant_id)
    held_until = _held_until(tenant, offer)
    notify(
        event,
        user.id,
        "appointment",
        f"An earlier time came free: {_describe(tenant, offer.starts_at)}. It is held for you until "
        f"{held_until}.",
        link=f"/portal/waitlist/offers/{offer.id}",
    )
    if user.email:
        offer_id, tenant_id = offer.id, offer.tenant_id
        events.after_handling(lambda: _queue_offer_email(offer_id, tenant_id))


def _portal_user(tenant_id: int, patient_id: int) -> User | None:
    return db.session.scalar(
        scoped(User, tenant_id).where(User.patient_id == patient_id, User.active.is_(True)).order_by(User.id)
    )


def _queue_offer_email(offer_id: int, tenant_id: int) -> None:
    try:
        enqueue(OFFER_EMAIL_JOB, offer_id, tenant_id=tenant_id, label="Waitlist offer email")
    except redis.RedisError:
        log.warning("email for waitlist offer %s not queued (the queue is down)", offer_id)


def email_offer(offer_id: int, tenant_id: int) -> bool:
    """Email the patient about one open offer, once: the notice row (hold, "offer", 0) is inserted and held
    uncommitted until the message is handed over, so a second worker waits and then finds it sent; a
    failure rolls it back for the retry. The email names the time only, not the kind of visit."""
    offer = get_scoped(WaitlistOffer, offer_id, tenant_id)
    if offer is None or offer.status != OFFER_OPEN or offer.expires_at <= utcnow():
        db.session.rollback()
        return False
    user = _portal_user(tenant_id, offer.entry.patient_id)
    if user is None or not user.email:
        db.session.rollback()
        return False
    claimed = insert_unless_exists(
        AppointmentNotice,
        {
            "tenant_id": tenant_id,
            "appointment_id": offer.hold_id,
            "kind": NOTICE_OFFER,
            "sequence": 0,
            "created_at": utcnow(),
        },
        ["appointment_id", "kind", "sequence"],
    )
    if not claimed:
        db.session.rollback()
        return False
    from ..mail.services import compose, deliver  # noqa: PLC0415 - mail renders templates (Flask)

    tenant = booking.clinic_of(tenant_id)
    zone = tenant.timezone
    try:
        sent = deliver(
            compose(
                user.email,
                "waitlist_offer",
                tenant_id=tenant_id,
                clinic=tenant.name,
                when=_describe(tenant, offer.starts_at),
                held_until=f"{_held_until(tenant, offer)} ({zone})",
                url=f"{current_app.config['PUBLIC_URL']}/portal/waitlist/offers/{offer.id}",
            )
        )
    except Exception:
        db.session.rollback()
        raise
    db.session.execute(
        update(AppointmentNotice)
        .where(
            AppointmentNotice.tenant_id == tenant_id,
            AppointmentNotice.appointment_id == offer.hold_id,
            AppointmentNotice.kind == NOTICE_OFFER,
            AppointmentNotice.sequence == 0,
        )
        .values(sent_at=utcnow(), message_id=sent[:200])
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return True


@task(OFFER_EMAIL_JOB)
def email_offer_job(offer_id: int, *, progress) -> dict:
    """Email the waiting patient about their offer (once, however often the job runs)."""
    return {"sent": email_offer(offer_id, progress.tenant_id)}
