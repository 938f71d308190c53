"""The scheduling tables: appointment types, providers' weekly hours and their exceptions, clinic closures,
appointments (holds included), the waitlist and its offers, and the ledger of notices sent.

No two appointments (or holds) of one provider may overlap, buffers included: the database refuses it
(`NO_OVERLAP_DDL`): on PostgreSQL an exclusion constraint over the blocked time range (`EXCLUDE USING gist`,
with btree_gist for the provider), on SQLite triggers that run inside the write transaction, which SQLite
serialises (one writer at a time), so the check and the write are one step that nothing can come between.
Rows of one booking share a `uid` (an appointment and the hold that moves it): those never clash with each
other. A deliberate overbooking (`overbooked`, with a reason) and what is over (cancelled, expired, …) do not
take part.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

from sqlalchemy import (
    DDL,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

IN_PERSON = "in_person"
VIDEO = "video"
MODES = {IN_PERSON: "In person", VIDEO: "Video"}

# Appointment statuses. HELD is a slot kept for a few minutes while someone confirms (or for a waitlist
# offer); it blocks the slot like a booking until `hold_expires_at`.
HELD = "held"
BOOKED = "booked"
CHECKED_IN = "checked_in"
COMPLETED = "completed"
CANCELLED = "cancelled"
NO_SHOW = "no_show"
EXPIRED = "expired"  # a hold nobody confirmed in time
RELEASED = "released"  # a hold used up: confirmed into a booking or a reschedule, or given back
STATUSES = {
    HELD: "Held",
    BOOKED: "Booked",
    CHECKED_IN: "Checked in",
    COMPLETED: "Completed",
    CANCELLED: "Cancelled",
    NO_SHOW: "No-show",
    EXPIRED: "Expired",
    RELEASED: "Released",
}
# What occupies the provider's time: only these take part in the no-overlap rule.
BLOCKING = (HELD, BOOKED, CHECKED_IN)
# The visible appointments (not holds and not their leftovers).
APPOINTMENT_STATUSES = (BOOKED, CHECKED_IN, COMPLETED, CANCELLED, NO_SHOW)

# Why a hold exists.
HOLD_BOOKING = "booking"  # a patient confirming a new booking
HOLD_RESCHEDULE = "reschedule"  # a patient confirming a move of `reschedules_id` (same uid)
HOLD_OFFER = "offer"  # a waitlist offer, kept for the waiting patient

# Waitlist entry statuses.
WAITING = "waiting"
OFFERED = "offered"
WAITLIST_BOOKED = "booked"
WITHDRAWN = "withdrawn"
WAITLIST_EXPIRED = "expired"  # its date range passed
WAITLIST_STATUSES = {
    WAITING: "Waiting",
    OFFERED: "Offered a time",
    WAITLIST_BOOKED: "Booked",
    WITHDRAWN: "Withdrawn",
    WAITLIST_EXPIRED: "Ended",
}
# Waitlist offer statuses.
OFFER_OPEN = "open"
OFFER_TAKEN = "taken"
OFFER_LAPSED = "lapsed"
OFFER_DECLINED = "declined"
OFFER_WITHDRAWN = "withdrawn"  # the slot went otherwise (staff booked it, the clinic closed)

# Availability exceptions.
TIME_OFF = "off"
EXTRA_HOURS = "extra"
EXCEPTION_KINDS = {TIME_OFF: "Time off", EXTRA_HOURS: "Extra hours"}

# Notices (emails with an .ics): one row per (appointment, kind, sequence) is the "sent once" claim.
NOTICE_CONFIRMATION = "confirmation"
NOTICE_UPDATE = "update"
NOTICE_CANCELLATION = "cancellation"
NOTICE_REMINDER_24H = "reminder_24h"
NOTICE_REMINDER_2H = "reminder_2h"
NOTICE_OFFER = "offer"


class AppointmentType(TenantScoped, db.Model):
    """What can be booked: how long it takes, where, and the rules for booking, moving and cancelling it."""

    __tablename__ = "appointment_types"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_appointment_types_name"),
        # Limits that keep every appointment's blocked span under a day (the SQLite trigger relies on it).
        CheckConstraint("duration_minutes > 0 AND duration_minutes <= 720", name="duration"),
        CheckConstraint(
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0 AND buffer_before_minutes <= 120 "
            "AND buffer_after_minutes <= 120",
            name="buffers",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(20), default=IN_PERSON)
    video_link: Mapped[str | None] = mapped_column(String(500))  # for video visits
    preparation: Mapped[str | None] = mapped_column(Text)  # shown to the patient and in every .ics
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    patient_bookable: Mapped[bool] = mapped_column(Boolean, default=True)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    horizon_days: Mapped[int] = mapped_column(Integer, default=56)
    # Patients may not move or cancel it themselves within these many minutes of its start.
    reschedule_cutoff_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    cancel_cutoff_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    # Who gets the staff task when a patient books it and the patient has no coach: a role (care pool).
    task_pool_role: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def mode_label(self) -> str:
        return MODES.get(self.mode, self.mode)

    @property
    def is_video(self) -> bool:
        return self.mode == VIDEO


class WeeklyHours(TenantScoped, db.Model):
    """One interval of a provider's regular week, in the clinic's zone (several a day are allowed)."""

    __tablename__ = "provider_weekly_hours"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday"),
        CheckConstraint("starts < ends", name="order"),
        Index("ix_provider_weekly_hours_provider", "tenant_id", "provider_id", "weekday"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    weekday: Mapped[int] = mapped_column(Integer)  # Monday = 0
    starts: Mapped[time] = mapped_column(Time)  # local wall-clock time
    ends: Mapped[time] = mapped_column(Time)

    provider = relationship("User")


class AvailabilityException(TenantScoped, db.Model):
    """A date on which a provider's week does not apply: time off (all day when no times), or extra hours."""

    __tablename__ = "availability_exceptions"
    __table_args__ = (
        CheckConstraint("kind IN ('off', 'extra')", name="kind"),
        CheckConstraint(
            "(starts IS NULL AND ends IS NULL AND kind = 'off') OR (starts IS NOT NULL AND ends IS NOT NULL "
            "AND starts < ends)",
            name="times",
        ),
        Index("ix_availability_exceptions_provider_day", "tenant_id", "provider_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    day: Mapped[date] = mapped_column(Date)  # the clinic's calendar day
    kind: Mapped[str] = mapped_column(String(10))
    starts: Mapped[time | None] = mapped_column(Time)
    ends: Mapped[time | None] = mapped_column(Time)
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    provider = relationship("User")

    @property
    def kind_label(self) -> str:
        return EXCEPTION_KINDS.get(self.kind, self.kind)


class ClinicClosure(TenantScoped, db.Model):
    """Days the whole clinic is closed (a holiday): nobody can be booked on them."""

    __tablename__ = "clinic_closures"
    __table_args__ = (
        CheckConstraint("first_day <= last_day", name="order"),
        Index("ix_clinic_closures_days", "tenant_id", "first_day", "last_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SchedulingSettings(TenantScoped, db.Model):
    """A clinic's scheduling choices; a clinic without a row has the defaults."""

    __tablename__ = "scheduling_settings"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_scheduling_settings_tenant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reminder_2h: Mapped[bool] = mapped_column(Boolean, default=True)  # the 24-hour reminder is always sent
    hold_minutes: Mapped[int] = mapped_column(Integer, default=10)
    offer_minutes: Mapped[int] = mapped_column(Integer, default=120)


def new_uid() -> str:
    return f"{uuid.uuid4()}@healthcrm"


class Appointment(TenantScoped, db.Model):
    """A patient's appointment with a provider, or a hold on a slot (status HELD).

    Times are naive UTC. `blocked_from`/`blocked_until` are the provider's time it takes: the appointment
    with the type's buffers before and after; the no-overlap rule compares those.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="order"),
        CheckConstraint("blocked_from <= starts_at AND blocked_until >= ends_at", name="blocked"),
        CheckConstraint("NOT overbooked OR overbook_reason IS NOT NULL", name="overbook_reason"),
        CheckConstraint("status <> 'held' OR hold_expires_at IS NOT NULL", name="hold_end"),
        Index("ix_appointments_provider_blocked", "tenant_id", "provider_id", "blocked_from"),
        Index("ix_appointments_patient_starts", "tenant_id", "patient_id", "starts_at"),
        Index("ix_appointments_starts", "tenant_id", "starts_at"),
        Index("ix_appointments_uid", "uid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stable across reschedules: the .ics UID, so a calendar app updates the same event.
    uid: Mapped[str] = mapped_column(String(80), default=new_uid)
    # The .ics SEQUENCE: raised on every change the patient is told about.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    blocked_from: Mapped[datetime] = mapped_column(DateTime)
    blocked_until: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default=BOOKED)
    hold_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    hold_purpose: Mapped[str | None] = mapped_column(String(20))  # HOLD_* while held
    reschedules_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))  # a reschedule hold's
    overbooked: Mapped[bool] = mapped_column(Boolean, default=False)
    overbook_reason: Mapped[str | None] = mapped_column(String(300))
    patient_note: Mapped[str | None] = mapped_column(String(500))  # "reason for visit", the patient's words
    booked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    # The visit record started from this appointment ("start a visit record").
    record_id: Mapped[int | None] = mapped_column(ForeignKey("medical_records.id"))

    patient = relationship("Patient")
    provider = relationship("User", foreign_keys=[provider_id])
    type = relationship("AppointmentType")

    @property
    def status_label(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def is_upcoming(self) -> bool:
        return self.status in (BOOKED, CHECKED_IN) and self.ends_at > utcnow()


class WaitlistEntry(TenantScoped, db.Model):
    """A patient asking for an earlier time: a type, a provider (or any), and the days that would do."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint("earliest_day <= latest_day", name="order"),
        Index("ix_waitlist_entries_queue", "tenant_id", "type_id", "status", "created_at"),
        # One open entry per patient and type: asking twice does not jump the queue.
        Index(
            "uq_waitlist_entries_open",
            "patient_id",
            "type_id",
            unique=True,
            sqlite_where=text("status IN ('waiting', 'offered')"),
            postgresql_where=text("status IN ('waiting', 'offered')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: any provider
    earliest_day: Mapped[date] = mapped_column(Date)
    latest_day: Mapped[date] = mapped_column(Date)
    # The booking the patient would like to move earlier, if any (taking an offer moves it).
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    status: Mapped[str] = mapped_column(String(20), default=WAITING)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    patient = relationship("Patient")
    type = relationship("AppointmentType")
    provider = relationship("User")
    appointment = relationship("Appointment")

    @property
    def status_label(self) -> str:
        return WAITLIST_STATUSES.get(self.status, self.status)


class WaitlistOffer(TenantScoped, db.Model):
    """A freed slot offered to one waiting patient, kept for them by a hold (`hold_id`) until it lapses.

    One open offer per slot: the hold is an appointment row, so the no-overlap rule forbids a second one.
    """

    __tablename__ = "waitlist_offers"
    __table_args__ = (
        Index("ix_waitlist_offers_entry", "tenant_id", "entry_id"),
        Index("ix_waitlist_offers_open", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entries.id"))
    hold_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    offered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default=OFFER_OPEN)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)

    entry = relationship("WaitlistEntry")
    hold = relationship("Appointment")


class AppointmentNotice(TenantScoped, db.Model):
    """An email about an appointment, claimed once: the unique key is the "sent exactly once" rule for
    confirmations, updates, cancellations, reminders and offers, whatever the number of workers."""

    __tablename__ = "appointment_notices"
    __table_args__ = (
        UniqueConstraint("appointment_id", "kind", "sequence", name="uq_appointment_notices_once"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    kind: Mapped[str] = mapped_column(String(20))
    sequence: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    message_id: Mapped[str | None] = mapped_column(String(200))


_BLOCKING_SQL = "('held', 'booked', 'checked_in')"
_SQLITE_CLASH = (
    "SELECT RAISE(ABORT, 'appointment_overlap') WHERE EXISTS (SELECT 1 FROM appointments a "
    "WHERE a.tenant_id = NEW.tenant_id AND a.provider_id = NEW.provider_id "
    "AND a.id IS NOT NEW.id AND a.uid <> NEW.uid "
    "AND a.status IN ('held', 'booked', 'checked_in') AND a.overbooked = 0 "
    "AND a.blocked_from < NEW.blocked_until AND a.blocked_until > NEW.blocked_from "
    # A lower bound for the index: no blocked span is a day long (the types' limits), so nothing that
    # starts a day earlier can reach this one; without it each insert reads the provider's whole history.
    "AND a.blocked_from > datetime(NEW.blocked_from, '-1 day'))"
)
_SQLITE_WHEN = f"NEW.status IN {_BLOCKING_SQL} AND NEW.overbooked = 0"

# The no-overlap rule, in the database; the same statements run in the Alembic revision.
NO_OVERLAP_DDL = {
    "sqlite": [
        f"CREATE TRIGGER appointments_no_overlap_insert BEFORE INSERT ON appointments "
        f"WHEN {_SQLITE_WHEN} BEGIN {_SQLITE_CLASH}; END",
        "CREATE TRIGGER appointments_no_overlap_update BEFORE UPDATE OF provider_id, blocked_from, "
        "blocked_until, status, overbooked, uid ON appointments "
        f"WHEN {_SQLITE_WHEN} BEGIN {_SQLITE_CLASH}; END",
    ],
    "postgresql": [
        "CREATE EXTENSION IF NOT EXISTS btree_gist",
        "ALTER TABLE appointments ADD CONSTRAINT appointments_no_overlap EXCLUDE USING gist "
        "(provider_id WITH =, uid WITH <>, tsrange(blocked_from, blocked_until) WITH &&) "
        f"WHERE (status IN {_BLOCKING_SQL} AND NOT overbooked)",
    ],
}

for _dialect, _statements in NO_OVERLAP_DDL.items():
    for _statement in _statements:
        event.listen(Appointment.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect))
