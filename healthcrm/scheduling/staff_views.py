"""The staff side of scheduling: appointment types, availability, closures, the calendar, booking.

Views parse the request, call one service (availability.py, calendar.py, booking.py) and render; a refused
form comes back in place with its message (422, or 409 for a clash with how things stand now).
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..clock import clinic_today, format_clinic_time, utcnow
from ..errors import DomainError, NotFound
from ..patients import services as patients
from ..permissions import can
from ..tenancy import get_scoped
from ..web import render_page
from . import availability, booking, calendar
from .models import EXCEPTION_KINDS, MODES, STATUSES, AppointmentType

bp = Blueprint("schedule", __name__, url_prefix="/schedule")
PATIENT_SEARCH_RESULTS = 10


def _zone() -> str:
    return current_user.tenant.timezone


def _day() -> date:
    raw = request.args.get("date", "")
    if not raw:
        return clinic_today(_zone())
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400)


def _int(source, name: str) -> int | None:
    raw = (source.get(name) or "").strip()
    return int(raw) if raw.isdigit() else None


def _clock(value) -> str:
    return format_clinic_time(value, _zone(), "%H:%M")


# --- the calendar -------------------------------------------------------------------------------------------


def _calendar_page(view_kind: str, day: date, view, provider=None):
    step = timedelta(days=7 if view_kind == "week" else 1)
    return render_page(
        "scheduling/staff/calendar.html",
        block="calendar",
        kind=view_kind,
        day=day,
        view=view,
        provider=provider,
        previous_day=day - step,
        next_day=day + step,
        today=clinic_today(_zone()),
        zone=_zone(),
        clock=_clock,
        providers=availability.clinic_staff(current_user.tenant_id),
        statuses=STATUSES,
    )


@bp.get("")
@requires("schedule.calendar")
def index():
    day = _day()
    return _calendar_page("clinic", day, calendar.clinic_day(current_actor(), day))


def _provider_id() -> int | None:
    return _int(request.args, "provider_id")


@bp.get("/day")
@requires("schedule.calendar")
def day():
    when = _day()
    view = calendar.provider_day(current_actor(), _provider_id(), when)
    return _calendar_page("day", when, view, view.columns[0].provider)


@bp.get("/week")
@requires("schedule.calendar")
def week():
    when = _day()
    view = calendar.provider_week(current_actor(), _provider_id(), when)
    return _calendar_page("week", when, view, view.provider)


# --- one appointment ----------------------------------------------------------------------------------------


def _appointment_page(
    appointment_id: int,
    *,
    errors: dict | None = None,
    alternatives=None,
    form: dict | None = None,
    status: int = 200,
):
    actor = current_actor()
    row = calendar.get_appointment(actor, appointment_id)
    return render_page(
        "scheduling/staff/appointment.html",
        status=status,
        appointment=row,
        tenant=current_user.tenant,
        when=booking.describe_time(current_user.tenant, row),
        zone=_zone(),
        clock=_clock,
        no_shows=booking.no_show_count(current_user.tenant_id, row.patient_id),
        providers=availability.clinic_staff(current_user.tenant_id),
        local_day=format_clinic_time(row.starts_at, _zone(), "%Y-%m-%d"),
        local_time=_clock(row.starts_at),
        errors=errors or {},
        alternatives=alternatives or [],
        form=form or {},
        pick_value=_pick_value,
        slot_label=_slot_label,
        names={p.id: p.full_name for p in availability.clinic_staff(current_user.tenant_id)},
    )


def _slot_label(slot) -> str:
    return format_clinic_time(slot.starts_at, _zone(), "%a %d %b, %H:%M")


def _pick_value(slot) -> str:
    return f"{format_clinic_time(slot.starts_at, _zone(), '%Y-%m-%dT%H:%M')}@{slot.provider_id}"


def _refused(appointment_id: int, error: DomainError, **extra):
    return _appointment_page(
        appointment_id,
        errors={error.field or "form": error.message},
        form=request.form.to_dict(),
        status=error.status,
        **extra,
    )


@bp.get("/appointments/<int:appointment_id>")
@requires("schedule.calendar")
def appointment(appointment_id: int):
    return _appointment_page(appointment_id)


@bp.post("/appointments/<int:appointment_id>/status")
@requires("schedule.check_in")
def change_status(appointment_id: int):
    action = request.form.get("action", "")
    try:
        booking.change_status(current_actor(), appointment_id, action)
    except DomainError as error:
        return _refused(appointment_id, error)
    done = {"check_in": "Checked in.", "complete": "Completed.", "no_show": "Marked as a no-show."}
    flash(done.get(action, "Saved."), "success")
    return redirect(url_for("schedule.appointment", appointment_id=appointment_id), code=303)


@bp.post("/appointments/<int:appointment_id>/cancel")
@requires("schedule.book")
def cancel(appointment_id: int):
    try:
        booking.cancel(current_actor(), appointment_id, request.form.get("reason"))
    except DomainError as error:
        return _refused(appointment_id, error)
    flash("Appointment cancelled.", "success")
    return redirect(url_for("schedule.appointment", appointment_id=appointment_id), code=303)


@bp.post("/appointments/<int:appointment_id>/reschedule")
@requires("schedule.book")
def reschedule(appointment_id: int):
    try:
        calendar.reschedule_to(
            current_actor(),
            appointment_id,
            day=request.form.get("date"),
            time_of_day=request.form.get("time"),
            provider_id=_int(request.form, "provider_id"),
            pick=request.form.get("pick"),
        )
    except booking.SlotTaken as taken:
        return _refused(appointment_id, taken, alternatives=taken.alternatives)
    except DomainError as error:
        return _refused(appointment_id, error)
    flash("Appointment moved.", "success")
    return redirect(url_for("schedule.appointment", appointment_id=appointment_id), code=303)


@bp.post("/appointments/<int:appointment_id>/record")
@requires("record.write")
def start_record(appointment_id: int):
    try:
        record_id = calendar.start_visit_record(current_actor(), appointment_id)
    except DomainError as error:
        return _refused(appointment_id, error)
    return redirect(url_for("records.edit", record_id=record_id), code=303)


# --- staff booking ------------------------------------------------------------------------------------------


def _booking_page(values: dict, *, errors=None, alternatives=None, status: int = 200):
    actor = current_actor()
    tenant_id = current_user.tenant_id
    query = (values.get("q") or "").strip()
    found = patients.search_patients(actor, query, per_page=PATIENT_SEARCH_RESULTS).patients if query else []
    patient = None
    patient_id = _int(values, "patient_id")
    if patient_id:
        patient = patients.get_patient(actor, patient_id)
        if patient is None:
            raise NotFound("patient")
    try:
        when = date.fromisoformat(values.get("date") or "")
    except ValueError:
        when = clinic_today(_zone())
    type_id, provider_id = _int(values, "type_id"), _int(values, "provider_id")
    return render_page(
        "scheduling/staff/book.html",
        status=status,
        values=values,
        query=query,
        found=found,
        patient=patient,
        no_shows=booking.no_show_count(tenant_id, patient.id) if patient else 0,
        types=availability.clinic_types(tenant_id, active_only=True),
        providers=availability.clinic_staff(tenant_id),
        type_id=type_id,
        provider_id=provider_id,
        day=when,
        slots=calendar.free_times(actor, type_id, provider_id, when, now=utcnow()),
        zone=_zone(),
        clock=_clock,
        pick_value=_pick_value,
        slot_label=_slot_label,
        names={p.id: p.full_name for p in availability.clinic_staff(current_user.tenant_id)},
        errors=errors or {},
        alternatives=alternatives or [],
        may_overbook=can(actor, "schedule.overbook"),
    )


@bp.get("/book")
@requires("schedule.book")
def book():
    return _booking_page(request.args.to_dict())


@bp.post("/book")
@requires("schedule.book")
def book_post():
    values = request.form.to_dict()
    try:
        row = calendar.book_for_patient(
            current_actor(),
            patient_id=_int(values, "patient_id"),
            type_id=_int(values, "type_id"),
            provider_id=_int(values, "provider_id"),
            day=values.get("date"),
            time_of_day=values.get("time"),
            pick=values.get("pick"),
            note=values.get("note"),
            overbook=values.get("overbook") == "1",
            overbook_reason=values.get("overbook_reason"),
        )
    except booking.SlotTaken as taken:
        return _booking_page(
            values, errors={"starts_at": taken.message}, alternatives=taken.alternatives, status=taken.status
        )
    except DomainError as error:
        return _booking_page(values, errors={error.field or "form": error.message}, status=error.status)
    flash("Appointment booked" + (" (overbooked)." if row.overbooked else "."), "success")
    return redirect(url_for("schedule.appointment", appointment_id=row.id), code=303)


# --- settings: types, closures, reminders -------------------------------------------------------------------


def _settings_page(*, errors=None, form=None, editing=None, status: int = 200):
    tenant_id = current_user.tenant_id
    return render_page(
        "scheduling/staff/settings.html",
        status=status,
        types=availability.clinic_types(tenant_id),
        closures=availability.clinic_closures(tenant_id, clinic_today(_zone()) - timedelta(days=30)),
        settings=booking.settings_for(tenant_id),
        providers=availability.clinic_staff(tenant_id),
        modes=MODES,
        pool_roles=availability.POOL_ROLES,
        editing=editing,
        errors=errors or {},
        form=form or {},
        zone=_zone(),
    )


def _settings_refused(error: DomainError, **extra):
    return _settings_page(
        errors={error.field or "form": error.message},
        form=request.form.to_dict(),
        status=error.status,
        **extra,
    )


@bp.get("/settings")
@requires("schedule.settings")
def settings():
    editing = None
    type_id = request.args.get("edit", type=int)
    if type_id:
        editing = get_scoped(AppointmentType, type_id, current_user.tenant_id)
        if editing is None:
            raise NotFound("appointment type")
    return _settings_page(editing=editing)


@bp.post("/settings/types")
@requires("schedule.settings")
def add_type():
    try:
        availability.save_type(current_actor(), request.form.to_dict())
    except DomainError as error:
        return _settings_refused(error)
    flash("Appointment type added.", "success")
    return redirect(url_for("schedule.settings", _anchor="types"), code=303)


@bp.post("/settings/types/<int:type_id>")
@requires("schedule.settings")
def edit_type(type_id: int):
    editing = get_scoped(AppointmentType, type_id, current_user.tenant_id)
    if editing is None:
        raise NotFound("appointment type")
    try:
        availability.save_type(current_actor(), request.form.to_dict(), type_id)
    except DomainError as error:
        return _settings_refused(error, editing=editing)
    flash("Appointment type saved.", "success")
    return redirect(url_for("schedule.settings", _anchor="types"), code=303)


@bp.post("/settings/types/<int:type_id>/active")
@requires("schedule.settings")
def toggle_type(type_id: int):
    active = request.form.get("active") == "1"
    availability.set_type_active(current_actor(), type_id, active)
    flash("Type active again." if active else "Type deactivated: it can no longer be booked.", "success")
    return redirect(url_for("schedule.settings", _anchor="types"), code=303)


@bp.post("/settings/closures")
@requires("schedule.settings")
def add_closure():
    try:
        availability.add_closure(current_actor(), request.form.to_dict())
    except DomainError as error:
        return _settings_refused(error)
    flash("Closure added.", "success")
    return redirect(url_for("schedule.settings", _anchor="closures"), code=303)


@bp.post("/settings/closures/<int:closure_id>/delete")
@requires("schedule.settings")
def remove_closure(closure_id: int):
    availability.remove_closure(current_actor(), closure_id)
    flash("Closure removed.", "success")
    return redirect(url_for("schedule.settings", _anchor="closures"), code=303)


@bp.post("/settings/clinic")
@requires("schedule.settings")
def save_settings():
    try:
        availability.save_settings(current_actor(), request.form.to_dict())
    except DomainError as error:
        return _settings_refused(error)
    flash("Scheduling settings saved.", "success")
    return redirect(url_for("schedule.settings", _anchor="clinic"), code=303)


# --- a provider's hours -------------------------------------------------------------------------------------


def _hours_page(provider_id: int | None, *, errors=None, form=None, status: int = 200):
    actor = current_actor()
    provider = availability.provider_for_hours(actor, provider_id)
    week = availability.weekly_hours(actor.tenant_id, provider.id)
    return render_page(
        "scheduling/staff/hours.html",
        status=status,
        provider=provider,
        values=form if form is not None else availability.week_form_values(week),
        weekdays=availability.WEEKDAYS,
        intervals_per_day=availability.INTERVALS_PER_DAY,
        exceptions=availability.provider_exceptions(actor.tenant_id, provider.id, clinic_today(_zone())),
        kinds=EXCEPTION_KINDS,
        providers=availability.clinic_staff(actor.tenant_id) if can(actor, "schedule.settings") else [],
        errors=errors or {},
        zone=_zone(),
    )


@bp.get("/hours")
@requires("schedule.settings", "schedule.own_hours")
def hours():
    return _hours_page(_int(request.args, "provider_id"))


@bp.post("/hours/<int:provider_id>/week")
@requires("schedule.settings", "schedule.own_hours")
def save_week(provider_id: int):
    try:
        availability.save_weekly_hours(current_actor(), provider_id, request.form.to_dict())
    except DomainError as error:
        return _hours_page(
            provider_id,
            errors={error.field or "form": error.message},
            form=request.form.to_dict(),
            status=422,
        )
    flash("Weekly hours saved.", "success")
    return redirect(url_for("schedule.hours", provider_id=provider_id), code=303)


@bp.post("/hours/<int:provider_id>/exceptions")
@requires("schedule.settings", "schedule.own_hours")
def add_exception(provider_id: int):
    try:
        availability.add_exception(current_actor(), provider_id, request.form.to_dict())
    except DomainError as error:
        return _hours_page(
            provider_id, errors={"exception_" + (error.field or "form"): error.message}, status=422
        )
    flash("Exception added.", "success")
    return redirect(url_for("schedule.hours", provider_id=provider_id, _anchor="exceptions"), code=303)


@bp.post("/hours/exceptions/<int:exception_id>/delete")
@requires("schedule.settings", "schedule.own_hours")
def remove_exception(exception_id: int):
    provider_id = availability.remove_exception(current_actor(), exception_id)
    flash("Exception removed.", "success")
    return redirect(url_for("schedule.hours", provider_id=provider_id, _anchor="exceptions"), code=303)
