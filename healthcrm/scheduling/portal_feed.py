"""Appointments on the patient's portal timeline (booked, moved, cancelled: the portal events booking.py
raises, one query per page) and their next appointments on the home page (an attention source). Imported
by portal_views.py, which the app registers."""

from __future__ import annotations

from sqlalchemy import and_, or_, select, true

from ..accounts.models import Tenant
from ..extensions import db
from ..portal.feed import Attention, Cursor, TimelineItem, attention_source, timeline_source
from ..portal.models import PortalEvent
from . import booking
from .models import Appointment, AppointmentType

# Paths, not url_for: the same words may be built outside a request (a job, the CLI).
PORTAL_APPOINTMENTS = "/portal/appointments/"
# How many next appointments the home page lists.
DASHBOARD_APPOINTMENTS = 3
TITLES = {
    booking.EVENT_BOOKED: "Appointment booked",
    booking.EVENT_RESCHEDULED: "Appointment moved",
    booking.EVENT_CANCELLED: "Appointment cancelled",
}


def appointment_path(appointment_id: int) -> str:
    return f"{PORTAL_APPOINTMENTS}{appointment_id}"


def _older_than(before: Cursor):
    if before is None:
        return true()
    at, key = before
    return or_(PortalEvent.created_at < at, and_(PortalEvent.created_at == at, PortalEvent.id < key))


@timeline_source("appointment", "Appointments")
def appointment_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    """Each booking, move and cancellation of the patient's appointments, when it happened; the detail
    names the appointment's kind and its time as it stands now."""
    tenant = db.session.get(Tenant, tenant_id)
    rows = db.session.execute(
        select(PortalEvent.id, PortalEvent.kind, PortalEvent.created_at, Appointment, AppointmentType.name)
        .join(
            Appointment,
            and_(Appointment.id == PortalEvent.subject_id, Appointment.tenant_id == tenant_id),
        )
        .join(AppointmentType, AppointmentType.id == Appointment.type_id)
        .where(
            PortalEvent.tenant_id == tenant_id,
            PortalEvent.patient_id == patient_id,
            Appointment.patient_id == patient_id,
            AppointmentType.tenant_id == tenant_id,
            PortalEvent.subject_type == "appointment",
            PortalEvent.kind.in_(tuple(TITLES)),
            _older_than(before),
        )
        .order_by(PortalEvent.created_at.desc(), PortalEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineItem(
            kind="appointment",
            at=at,
            key=key,
            title=f"{TITLES[kind]}: {type_name}",
            detail=booking.describe_time(tenant, row),
            link=appointment_path(row.id),
        )
        for key, kind, at, row, type_name in rows
    ]


@attention_source
def next_appointments(tenant_id: int, patient_id: int, user_id: int) -> list[Attention]:
    """The patient's next appointments for the home page, soonest first."""
    upcoming = booking.upcoming_for_patient(tenant_id, patient_id, DASHBOARD_APPOINTMENTS)
    if not upcoming:
        return []
    tenant = db.session.get(Tenant, tenant_id)
    return [
        Attention(
            f"{'Your next appointment' if i == 0 else 'Then'}: {row.type.name}, "
            f"{booking.describe_time(tenant, row)}",
            appointment_path(row.id),
        )
        for i, row in enumerate(upcoming)
    ]


__all__ = ["appointment_items", "next_appointments"]
