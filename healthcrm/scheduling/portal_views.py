"""The patient's appointments in the portal: the list and history, booking (choose a type, a provider and a
free time; the time is held while the patient confirms), one appointment with reschedule, cancel and its
.ics. The waitlist has its own blueprint (portal_waitlist).

The patient id always comes from the session (`current_user.patient_id`); an appointment or hold id that
is not this patient's answers 404 (the services raise NotFound) and changes nothing. Booking errors come
back in the page they were made on: a taken time (409) with the nearest free ones as buttons, a lapsed hold
(409) with the times again, anything the patient can fix (422) with its message.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..clock import to_clinic_time
from ..errors import CONFLICT, UNPROCESSABLE
from ..web import render_page
from . import (
    booking,
    portal_feed,  # noqa: F401 - registers the timeline and dashboard sources
)
from . import portal_services as pages
from .models import HOLD_BOOKING, HOLD_RESCHEDULE

bp = Blueprint("portal_appointments", __name__, url_prefix="/portal/appointments")
patient_page = requires("portal.use")
BOOK_TEMPLATE = "scheduling/portal/book.html"


def _int(name: str) -> int | None:
    value = request.form.get(name) or request.args.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.form.get(name) or request.args.get(name) or "")
    except ValueError:
        return None


def _instant(name: str) -> datetime | None:
    """A slot's start as the form sends it (ISO, naive UTC as the slots page writes it)."""
    try:
        value = datetime.fromisoformat(request.form.get(name) or "")
    except ValueError:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _week_of(moment: datetime) -> date:
    """The Monday of the clinic's week in which `moment` (naive UTC) falls."""
    return pages.week_start_of(to_clinic_time(moment, current_user.tenant.timezone).date())


def _book_page(
    *,
    type_id: int | None,
    provider_id: int | None,
    week: date | None,
    reschedules_id: int | None = None,
    message: str | None = None,
    alternatives: list | None = None,
    status: int = 200,
):
    choice = pages.slot_choice(
        current_actor(), current_user.patient_id, type_id, provider_id, week, reschedules_id=reschedules_id
    )
    return render_page(
        BOOK_TEMPLATE,
        block="slots",
        choice=choice,
        message=message,
        alternatives=alternatives or [],
        status=status,
    )


# --- the list --------------------------------------------------------------------------------------------


@bp.get("/")
@patient_page
def index():
    lists = pages.patient_appointments(current_actor(), current_user.patient_id)
    return render_page("scheduling/portal/index.html", lists=lists)


# --- booking ---------------------------------------------------------------------------------------------


@bp.get("/book")
@patient_page
def book():
    return _book_page(type_id=_int("type_id"), provider_id=_int("provider_id"), week=_day("week"))


@bp.post("/hold")
@patient_page
def hold():
    actor = current_actor()
    type_id, provider_id, reschedules_id = _int("type_id"), _int("provider_id"), _int("reschedules_id")
    starts_at = _instant("starts_at")
    try:
        held = booking.hold_slot(
            actor,
            current_user.patient_id,
            type_id,
            provider_id,
            starts_at,
            purpose=HOLD_RESCHEDULE if reschedules_id else HOLD_BOOKING,
            reschedules_id=reschedules_id,
        )
    except booking.SlotTaken as error:
        return _book_page(
            type_id=type_id,
            provider_id=provider_id,
            week=_day("week"),
            reschedules_id=reschedules_id,
            message=error.message,
            alternatives=error.alternatives,
            status=CONFLICT,
        )
    except booking.SchedulingError as error:  # CutoffPassed too
        return _book_page(
            type_id=type_id,
            provider_id=provider_id,
            week=_day("week"),
            reschedules_id=reschedules_id,
            message=error.message,
            status=UNPROCESSABLE,
        )
    return redirect(url_for("portal_appointments.hold_show", hold_id=held.id), 303)


def _lapsed(page: pages.HoldPage, status: int):
    """The times again, with why the hold is gone."""
    hold = page.hold
    return _book_page(
        type_id=hold.type_id,
        provider_id=_int("provider_id"),
        week=_week_of(hold.starts_at),
        reschedules_id=hold.reschedules_id if hold.hold_purpose == HOLD_RESCHEDULE else None,
        message=booking.HoldLapsed().message,
        status=status,
    )


@bp.get("/hold/<int:hold_id>")
@patient_page
def hold_show(hold_id: int):
    page = pages.hold_page(current_actor(), current_user.patient_id, hold_id)
    if page.confirmed is not None:
        return redirect(url_for("portal_appointments.show", appointment_id=page.confirmed.id), 303)
    if not page.live:
        return _lapsed(page, 200)
    return render_page("scheduling/portal/hold.html", page=page, note="", errors={})


@bp.post("/hold/<int:hold_id>/confirm")
@patient_page
def confirm(hold_id: int):
    actor = current_actor()
    note = request.form.get("note", "")
    try:
        done = booking.confirm_hold(actor, current_user.patient_id, hold_id, note)
    except booking.HoldLapsed:
        page = pages.hold_page(actor, current_user.patient_id, hold_id)
        if page.confirmed is not None:  # a replayed confirm of a reschedule: it happened once
            return redirect(url_for("portal_appointments.show", appointment_id=page.confirmed.id), 303)
        return _lapsed(page, CONFLICT)
    except booking.SchedulingError as error:
        page = pages.hold_page(actor, current_user.patient_id, hold_id)
        return render_page(
            "scheduling/portal/hold.html",
            page=page,
            note=note,
            errors={error.field or "": error.message},
            status=UNPROCESSABLE,
        )
    moved = done.id != hold_id
    flash("Your appointment was moved." if moved else "Your appointment is booked.", "success")
    return redirect(url_for("portal_appointments.show", appointment_id=done.id), 303)


@bp.post("/hold/<int:hold_id>/release")
@patient_page
def release(hold_id: int):
    actor = current_actor()
    page = pages.hold_page(actor, current_user.patient_id, hold_id)
    booking.release_hold(actor, current_user.patient_id, hold_id)
    hold = page.hold
    week = _week_of(hold.starts_at).isoformat()
    if hold.hold_purpose == HOLD_RESCHEDULE and hold.reschedules_id:
        return redirect(
            url_for("portal_appointments.reschedule", appointment_id=hold.reschedules_id, week=week), 303
        )
    return redirect(url_for("portal_appointments.book", type_id=hold.type_id, week=week), 303)


# --- one appointment -------------------------------------------------------------------------------------


@bp.get("/<int:appointment_id>")
@patient_page
def show(appointment_id: int):
    page = pages.patient_appointment(current_actor(), current_user.patient_id, appointment_id)
    return render_page(
        "scheduling/portal/show.html", page=page, calendar=pages.calendar_available(), message=None
    )


@bp.get("/<int:appointment_id>/reschedule")
@patient_page
def reschedule(appointment_id: int):
    return _book_page(
        type_id=None, provider_id=_int("provider_id"), week=_day("week"), reschedules_id=appointment_id
    )


@bp.post("/<int:appointment_id>/cancel")
@patient_page
def cancel(appointment_id: int):
    actor = current_actor()
    try:
        booking.cancel(actor, appointment_id, request.form.get("reason"), patient_id=current_user.patient_id)
    except booking.SchedulingError as error:  # CutoffPassed: too close to the start
        page = pages.patient_appointment(actor, current_user.patient_id, appointment_id)
        return render_page(
            "scheduling/portal/show.html",
            page=page,
            calendar=pages.calendar_available(),
            message=error.message,
            status=UNPROCESSABLE,
        )
    flash("Your appointment is cancelled.", "success")
    return redirect(url_for("portal_appointments.show", appointment_id=appointment_id), 303)


@bp.get("/<int:appointment_id>/calendar.ics")
@patient_page
def calendar(appointment_id: int):
    if not pages.calendar_available():
        abort(404)
    body = pages.calendar_file(current_actor(), current_user.patient_id, appointment_id)
    return (
        body,
        200,
        {
            "Content-Type": "text/calendar; charset=utf-8",
            "Content-Disposition": f'attachment; filename="appointment-{appointment_id}.ics"',
        },
    )
