"""Calendar files (RFC 5545, with the `icalendar` library) for the appointment emails.

One event per appointment, named by the appointment's `uid` (kept across reschedules) with its `sequence`
(raised on every change), so a calendar app that got the confirmation updates or removes that same event
when the update or the cancellation arrives, instead of adding another. What goes in is what the patient
needs to turn up: the kind of visit, where (the clinic's address, or the video link), the preparation and
the clinic's phone; never the patient's note, a diagnosis or anything else clinical.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parseaddr

from flask import current_app
from icalendar import Calendar, Event, vCalAddress, vText

from ..accounts.models import Tenant
from ..clock import utcnow
from .models import CANCELLED, Appointment

PRODID = "-//HealthCRM//Appointments//EN"
REQUEST = "REQUEST"
CANCEL = "CANCEL"
METHODS = (REQUEST, CANCEL)
FALLBACK_ORGANIZER = "no-reply@healthcrm.local"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def organizer_address() -> str:
    """The address calendar apps show as the organiser: the app's sender (MAIL_FROM), else a no-reply."""
    _name, address = parseaddr(current_app.config.get("MAIL_FROM") or "")
    return address or FALLBACK_ORGANIZER


def summary(tenant: Tenant, appointment: Appointment) -> str:
    """ "Video follow-up at Lindenhof Praxis": the event's title."""
    return f"{appointment.type.name} at {tenant.name}"


def location(tenant: Tenant, appointment: Appointment) -> str | None:
    """Where to be: the video link for a video visit, else the clinic's address."""
    kind = appointment.type
    if kind.is_video:
        return kind.video_link or None
    return tenant.address or None


def description(tenant: Tenant, appointment: Appointment) -> str:
    """The event's notes: preparation, the video link for a video visit, the clinic's phone."""
    kind = appointment.type
    lines: list[str] = []
    if kind.preparation:
        lines += ["How to prepare:", kind.preparation.strip(), ""]
    if kind.is_video and kind.video_link:
        lines += [f"Join the video visit: {kind.video_link}", ""]
    if tenant.phone:
        lines.append(f"Questions or changes: call {tenant.name} on {tenant.phone}.")
    else:
        lines.append(f"Questions or changes: call {tenant.name}.")
    return "\n".join(lines)


def appointment_calendar(tenant: Tenant, appointment: Appointment, method: str = REQUEST) -> bytes:
    """The .ics for one appointment: METHOD REQUEST (a booking or a change) or CANCEL."""
    if method not in METHODS:
        raise ValueError(f"unknown calendar method {method!r}")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)

    event = Event()
    event.add("uid", appointment.uid)
    event.add("sequence", appointment.sequence or 0)
    event.add("dtstamp", _aware(utcnow()))
    event.add("dtstart", _aware(appointment.starts_at))
    event.add("dtend", _aware(appointment.ends_at))
    event.add("summary", summary(tenant, appointment))
    place = location(tenant, appointment)
    if place:
        event.add("location", place)
    event.add("description", description(tenant, appointment))
    cancelled = method == CANCEL or appointment.status == CANCELLED
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{organizer_address()}")
    organizer.params["cn"] = vText(tenant.name)
    event.add("organizer", organizer)
    calendar.add_component(event)
    return calendar.to_ical()


__all__ = ["CANCEL", "REQUEST", "appointment_calendar", "description", "location", "summary"]
