"""What appointment events set off: the staff task, the patient's notification and email (with an .ics),
the waitlist's next offer, care-stage rules. Imported at app start (MODULES_THAT_REGISTER).

- The email (notices.py), always: a confirmation on booking, an update on a move (its new sequence), a
  notice on cancelling; queued once the handling has committed, sent once.
- A task for the patient's coach (or the type's pool, else whoever books) when the patient did it
  themselves: the care team hears of a booking they did not make.
- The patient's in-app notification when staff did it for them: a patient who did it sees the
  confirmation page already.
- Care stages: the clinic's rules (care/stages.py, the default "first appointment booked → active care")
  run for every event there.

Each handler runs in the event's handling transaction, once per event, and skips what no longer applies
(an appointment cancelled before its "booked" event was handled gets no task and no confirmation).
"""

from __future__ import annotations

from ..accounts.models import Tenant, User
from ..care.services import open_task
from ..extensions import db
from ..patients.models import Patient
from ..permissions import roles_for
from ..portal import events
from ..portal.models import PortalEvent
from ..portal.notifications import notify
from ..tenancy import get_scoped
from . import notices
from .booking import EVENT_BOOKED, EVENT_CANCELLED, EVENT_RESCHEDULED, describe_time
from .models import (
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    NOTICE_CANCELLATION,
    NOTICE_CONFIRMATION,
    NOTICE_UPDATE,
    Appointment,
)

TASK_KIND = "appointment"
NOTIFICATION_KIND = "appointment"
# Who gets the task when the patient has no coach and the type names no pool.
DEFAULT_POOL_PERMISSION = "schedule.book"
DEFAULT_POOL_NAME = "Appointments"
# event kind: (the statuses in which it still applies, the notice it sends, task title, notification text)
WHAT = {
    EVENT_BOOKED: (
        (BOOKED, CHECKED_IN),
        NOTICE_CONFIRMATION,
        "Booked online",
        "The clinic booked an appointment for you",
    ),
    EVENT_RESCHEDULED: (
        (BOOKED, CHECKED_IN),
        NOTICE_UPDATE,
        "Moved online",
        "The clinic moved your appointment",
    ),
    EVENT_CANCELLED: (
        (CANCELLED,),
        NOTICE_CANCELLATION,
        "Cancelled online",
        "The clinic cancelled your appointment",
    ),
}


def staff_link(appointment: Appointment) -> str:
    """Where the staff task points: the appointment's page (a path: handlers run in jobs, with no request)."""
    return f"/schedule/appointments/{appointment.id}"


def done_by_patient(event: PortalEvent) -> bool:
    """Whether the patient did it themselves (their portal account is the event's actor)."""
    if event.actor_user_id is None:
        return False  # the clinic's own jobs (a waitlist offer lapsing, a sweep)
    actor = get_scoped(User, event.actor_user_id, event.tenant_id)
    return actor is not None and actor.is_patient


def _portal_user_id(event: PortalEvent) -> int | None:
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    user = patient.portal_user if patient is not None else None
    return user.id if user is not None and user.active else None


def _task(event: PortalEvent, appointment: Appointment, title: str) -> None:
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    coach = get_scoped(User, patient.assigned_coach_id, event.tenant_id) if patient else None
    pool_role = appointment.type.task_pool_role
    if coach is not None and coach.active:
        target: dict = {"assignee_id": coach.id}
    elif pool_role:
        target = {"pool_roles": [pool_role], "pool_name": DEFAULT_POOL_NAME}
    else:
        target = {"pool_roles": sorted(roles_for(DEFAULT_POOL_PERMISSION)), "pool_name": DEFAULT_POOL_NAME}
    open_task(event, TASK_KIND, title, link=staff_link(appointment), **target)


def handle_appointment_event(event: PortalEvent) -> None:
    """The email, and the task (patient did it) or the notification (staff did it), for one event."""
    statuses, notice, task_title, notification_text = WHAT[event.kind]
    appointment = get_scoped(Appointment, event.subject_id, event.tenant_id) if event.subject_id else None
    if appointment is None or appointment.status not in statuses:
        return  # changed again before this event was handled: that change's event tells its own story
    tenant = db.session.get(Tenant, event.tenant_id)
    sequence = event.payload.get("sequence", appointment.sequence)
    notices.queue_notice(event.tenant_id, appointment.id, notice, int(sequence))
    what = f"{appointment.type.name}, {describe_time(tenant, appointment)}"
    if done_by_patient(event):
        _task(event, appointment, f"{task_title}: {what}")
        return
    user_id = _portal_user_id(event)
    if user_id is not None:
        notify(
            event,
            user_id,
            NOTIFICATION_KIND,
            f"{notification_text}: {what}.",
            notices.portal_link(appointment.id),
        )


@events.handles(EVENT_BOOKED)
def _booked(event: PortalEvent) -> None:
    handle_appointment_event(event)


@events.handles(EVENT_RESCHEDULED)
def _rescheduled(event: PortalEvent) -> None:
    handle_appointment_event(event)


@events.handles(EVENT_CANCELLED)
def _cancelled(event: PortalEvent) -> None:
    handle_appointment_event(event)


__all__ = ["TASK_KIND", "done_by_patient", "handle_appointment_event", "staff_link"]
