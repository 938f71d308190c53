"""Emails about appointments, each with an .ics, each sent exactly once (AppointmentNotice claims it).

A notice is one (appointment, kind, sequence): the confirmation of a booking, the update after a move (the
new sequence), the cancellation, and the reminders 24 hours and (per clinic) 2 hours before. Sending one
first INSERTs its AppointmentNotice row (ON CONFLICT DO NOTHING on the unique key), as the very first
statement of its transaction, and keeps that transaction open until the message is handed to the mail
backend: a second worker's INSERT of the same key waits (a row lock on PostgreSQL, the write lock on SQLite)
and then finds the row, so two workers, or a job run twice, send one email. A failure to send rolls the
claim back for the job's retry. Emails are sent from jobs (`scheduling.send_notice`), queued once the
event's handling has committed; the reminders come from the periodic `scheduling.reminders`.

What an email says is what the patient needs to turn up (the clinic, the kind of visit, the time in the
clinic's zone, where or the video link, the preparation, the clinic's phone, the portal link); never the
patient's note or anything clinical. The subject says even less (mail.services.SUBJECTS).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import select, update

from ..accounts.models import Tenant, User
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..extensions import db
from ..jobs.queue import task
from ..patients.models import Patient
from ..tenancy import get_scoped
from . import ics
from .booking import describe_time, settings_for
from .models import (
    BOOKED,
    CANCELLED,
    NOTICE_CANCELLATION,
    NOTICE_CONFIRMATION,
    NOTICE_REMINDER_2H,
    NOTICE_REMINDER_24H,
    NOTICE_UPDATE,
    Appointment,
    AppointmentNotice,
)

log = logging.getLogger(__name__)

# Each kind's email template (mail/<template>.txt and .html, subject in mail.services.SUBJECTS) and the
# calendar method of its .ics.
NOTICES = {
    NOTICE_CONFIRMATION: ("appointment_confirmation", ics.REQUEST),
    NOTICE_UPDATE: ("appointment_update", ics.REQUEST),
    NOTICE_CANCELLATION: ("appointment_cancellation", ics.CANCEL),
    NOTICE_REMINDER_24H: ("appointment_reminder", ics.REQUEST),
    NOTICE_REMINDER_2H: ("appointment_reminder", ics.REQUEST),
}
# How long before the start each reminder is due.
REMINDER_LEADS = {NOTICE_REMINDER_24H: timedelta(hours=24), NOTICE_REMINDER_2H: timedelta(hours=2)}
REMINDER_BATCH = 500
ICS_FILENAME = "appointment.ics"
JOB_KIND = "scheduling.send_notice"

# What `send_notice` did.
SENT = "sent"
SENT_ALREADY = "sent already"
NO_ADDRESS = "no email address"
NO_LONGER_APPLIES = "no longer applies"


def portal_link(appointment_id: int) -> str:
    """The patient's page of the appointment (a path: jobs have no request to build URLs from)."""
    return f"/portal/appointments/{appointment_id}"


def recipient(appointment: Appointment) -> str | None:
    """Where the patient's appointment emails go: the patient's email, else their portal account's."""
    patient = get_scoped(Patient, appointment.patient_id, appointment.tenant_id)
    if patient is None:
        return None
    if patient.email:
        return patient.email
    user: User | None = patient.portal_user
    if user is not None and user.active and user.email:
        return user.email
    return None


def applies(appointment: Appointment, kind: str, sequence: int, now: datetime) -> bool:
    """Whether the notice still says something true: a confirmation, update or reminder of a booking as it
    is now (its current sequence, still booked, not over), a cancellation of a cancelled one."""
    if appointment.sequence != sequence:
        return False  # changed since: the newer change's own notice tells the patient
    if kind == NOTICE_CANCELLATION:
        return appointment.status == CANCELLED
    if appointment.status != BOOKED:
        return False
    if kind in REMINDER_LEADS:
        return appointment.starts_at > now
    return appointment.ends_at > now


def compose_notice(tenant: Tenant, appointment: Appointment, kind: str, to: str):
    """The email of one notice, with its .ics attached (text/calendar, with the calendar's METHOD)."""
    from ..mail.services import compose  # noqa: PLC0415 - mail renders templates (Flask)

    template, method = NOTICES[kind]
    kind_of_visit = appointment.type
    message = compose(
        to,
        template,
        tenant_id=tenant.id,
        clinic=tenant.name,
        type_name=kind_of_visit.name,
        when=describe_time(tenant, appointment),
        is_video=kind_of_visit.is_video,
        video_link=kind_of_visit.video_link if kind_of_visit.is_video else None,
        address=None if kind_of_visit.is_video else tenant.address,
        preparation=(kind_of_visit.preparation or "").strip() or None,
        phone=tenant.phone,
        url=f"{current_app.config['PUBLIC_URL']}{portal_link(appointment.id)}",
    )
    message.add_attachment(
        ics.appointment_calendar(tenant, appointment, method),
        maintype="text",
        subtype="calendar",
        filename=ICS_FILENAME,
        params={"method": method, "charset": "utf-8"},
    )
    return message


def send_notice(tenant_id: int, appointment_id: int, kind: str, sequence: int) -> str:
    """Send one notice about an appointment, once per (appointment, kind, sequence). Returns SENT,
    SENT_ALREADY, NO_ADDRESS or NO_LONGER_APPLIES; a failure to send raises (and claims nothing)."""
    if kind not in NOTICES:
        raise ValueError(f"unknown appointment notice {kind!r}")
    now = utcnow()
    # The claim first: a read before it would let a racing worker's commit come in between on SQLite.
    claimed = insert_unless_exists(
        AppointmentNotice,
        {
            "tenant_id": tenant_id,
            "appointment_id": appointment_id,
            "kind": kind,
            "sequence": sequence,
            "created_at": now,
        },
        ["appointment_id", "kind", "sequence"],
    )
    if not claimed:
        db.session.rollback()
        return SENT_ALREADY
    appointment = get_scoped(Appointment, appointment_id, tenant_id)
    if appointment is None or not applies(appointment, kind, sequence, now):
        db.session.rollback()
        return NO_LONGER_APPLIES
    to = recipient(appointment)
    if to is None:
        db.session.rollback()  # nothing sent: a reminder may still go once the patient has an address
        return NO_ADDRESS
    from ..mail.services import deliver  # noqa: PLC0415 - mail renders templates (Flask)

    tenant = db.session.get(Tenant, tenant_id)
    message = compose_notice(tenant, appointment, kind, to)
    try:
        deliver(message)
    except Exception:
        db.session.rollback()
        raise
    db.session.execute(
        update(AppointmentNotice)
        .where(
            AppointmentNotice.tenant_id == tenant_id,
            AppointmentNotice.appointment_id == appointment_id,
            AppointmentNotice.kind == kind,
            AppointmentNotice.sequence == sequence,
        )
        .values(sent_at=utcnow(), message_id=str(message["Message-ID"])[:200])
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return SENT


@task(JOB_KIND)
def send_notice_job(appointment_id: int, kind: str, sequence: int, *, progress) -> dict:
    """The job: one appointment email (once, however often the job runs)."""
    return {"outcome": send_notice(progress.tenant_id, appointment_id, kind, sequence)}


def queue_notice(tenant_id: int, appointment_id: int, kind: str, sequence: int) -> None:
    """Queue the email once the event's handling has committed (call from a portal-event handler). With
    the queue down it is sent there and then: the handling runs in a job or a sweep, not a request."""
    from ..portal.events import after_handling  # noqa: PLC0415 - events imports the app's handlers

    def send() -> None:
        from ..jobs.queue import enqueue  # noqa: PLC0415 - jobs imports every area's tasks

        try:
            enqueue(JOB_KIND, appointment_id, kind, sequence, tenant_id=tenant_id, label="Appointment email")
        except redis.RedisError:
            log.warning(
                "appointment %s %s email not queued (the queue is down); sending it now", appointment_id, kind
            )
            send_notice(tenant_id, appointment_id, kind, sequence)

    after_handling(send)


def due_reminder(starts_at: datetime, changed_at: datetime, now: datetime, two_hours: bool) -> str | None:
    """The reminder an appointment starting at `starts_at` is due for now, if any: the 2-hour one inside
    2 hours (when the clinic sends it), else the 24-hour one inside 24 hours. None when the booking was made
    or moved after that reminder's time: its confirmation or update, just sent, said the same."""
    left = starts_at - now
    if left <= timedelta(0):
        return None
    if two_hours and left <= REMINDER_LEADS[NOTICE_REMINDER_2H]:
        kind = NOTICE_REMINDER_2H
    elif left <= REMINDER_LEADS[NOTICE_REMINDER_24H]:
        kind = NOTICE_REMINDER_24H
    else:
        return None
    if changed_at >= starts_at - REMINDER_LEADS[kind]:
        return None
    return kind


def _sent(kind: str):
    return (
        select(AppointmentNotice.id)
        .where(
            AppointmentNotice.appointment_id == Appointment.id,
            AppointmentNotice.kind == kind,
            AppointmentNotice.sequence == Appointment.sequence,
        )
        .exists()
    )


def send_due_reminders() -> str:
    """The periodic job: the 24-hour (and, per clinic, 2-hour) reminders that are due, each once."""
    now = utcnow()
    # Across clinics on purpose: each reminder is then claimed and sent within its own clinic.
    rows = db.session.execute(
        select(
            Appointment.id,
            Appointment.tenant_id,
            Appointment.sequence,
            Appointment.starts_at,
            Appointment.updated_at,
            _sent(NOTICE_REMINDER_24H).label("sent_24h"),
            _sent(NOTICE_REMINDER_2H).label("sent_2h"),
        )
        .where(
            Appointment.status == BOOKED,
            Appointment.starts_at > now,
            Appointment.starts_at <= now + REMINDER_LEADS[NOTICE_REMINDER_24H],
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(REMINDER_BATCH)
        .execution_options(all_tenants=True)
    ).all()
    two_hours = {
        tenant_id: settings_for(tenant_id).reminder_2h for tenant_id in {row.tenant_id for row in rows}
    }
    db.session.rollback()  # each claim below starts its own transaction
    outcomes: dict[str, int] = {}
    for row in rows:
        kind = due_reminder(row.starts_at, row.updated_at, now, two_hours[row.tenant_id])
        if kind is None or (row.sent_2h if kind == NOTICE_REMINDER_2H else row.sent_24h):
            continue
        try:
            outcome = send_notice(row.tenant_id, row.id, kind, row.sequence)
        except Exception:
            log.exception("reminder for appointment %s not sent; it stays for the next run", row.id)
            outcome = "failed"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    text = f"{outcomes.pop(SENT, 0)} reminders sent"
    if outcomes.get(NO_ADDRESS):
        text += f"; {outcomes.pop(NO_ADDRESS)} skipped (the patient has no email address)"
    rest = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    return f"{text}; {rest}" if rest else text


__all__ = [
    "NOTICES",
    "compose_notice",
    "due_reminder",
    "portal_link",
    "queue_notice",
    "recipient",
    "send_due_reminders",
    "send_notice",
]
