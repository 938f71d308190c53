"""The patient's profile page: details, each section a form that saves in place (htmx swaps the section) or
as a plain post that comes back to the page; identity change requests. The patient id always comes from the
session; another patient's contact or request id answers 404 and changes nothing."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from ...access import current_actor, requires
from ...errors import Conflict
from ...extensions import htmx
from ...patients.models import SEXES
from ...web import render_page
from . import handlers, services  # noqa: F401 - handlers register
from .models import IDENTITY_FIELDS

bp = Blueprint("portal_profile", __name__, url_prefix="/portal/profile")
TEMPLATE = "portal/profile/index.html"
INVALID = 422
patient_page = requires("portal.use")
SAVED = {
    "contact": "Your contact details are saved.",
    "insurance": "Your insurance details are saved.",
    "emergency_contacts": "Your emergency contacts are saved.",
    "identity": "Your request is with the clinic. You will be told when they answer.",
}


def _page(
    section: str | None = None,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    submitted: dict[str, str] | None = None,
    message: str | None = None,
    editing: int | None = None,
):
    """The whole page, or (htmx) only the section that was posted, with its errors or its saved notice."""
    view = services.profile_view(current_actor(), current_user.patient_id)
    return render_page(
        TEMPLATE,
        block=section,
        status=status,
        view=view,
        patient=view.patient,
        section=section,
        errors=errors or {},
        submitted=submitted or {},
        message=message,
        failed=status >= 400,
        editing=editing,
        sexes=SEXES,
        identity_fields=IDENTITY_FIELDS,
    )


def _done(section: str):
    if htmx and not htmx.boosted:
        return _page(section, message=SAVED[section])
    flash(SAVED[section], "success")
    return redirect(url_for("portal_profile.index", _anchor=section), 303)


def _invalid(section: str, error: services.ProfileError, *, editing: int | None = None):
    return _page(
        section,
        status=INVALID,
        errors={error.field or "": error.message},
        submitted=request.form.to_dict(),
        editing=editing,
    )


@bp.get("")
@patient_page
def index():
    return _page()


def _save_details(section: str):
    try:
        services.update_details(current_actor(), current_user.patient_id, section, request.form.to_dict())
    except services.ProfileError as error:
        return _invalid(section, error)
    return _done(section)


@bp.post("/contact")
@patient_page
def contact():
    return _save_details("contact")


@bp.post("/insurance")
@patient_page
def insurance():
    return _save_details("insurance")


@bp.post("/emergency-contacts")
@patient_page
def contact_add():
    try:
        services.add_emergency_contact(current_actor(), current_user.patient_id, request.form.to_dict())
    except services.ProfileError as error:
        return _invalid("emergency_contacts", error, editing=0)
    return _done("emergency_contacts")


@bp.post("/emergency-contacts/<int:contact_id>")
@patient_page
def contact_edit(contact_id: int):
    try:
        services.update_emergency_contact(
            current_actor(), current_user.patient_id, contact_id, request.form.to_dict()
        )
    except services.ProfileError as error:
        return _invalid("emergency_contacts", error, editing=contact_id)
    return _done("emergency_contacts")


@bp.post("/emergency-contacts/<int:contact_id>/remove")
@patient_page
def contact_remove(contact_id: int):
    services.remove_emergency_contact(current_actor(), current_user.patient_id, contact_id)
    return _done("emergency_contacts")


@bp.post("/change-request")
@patient_page
def change_request():
    try:
        services.request_change(
            current_actor(), current_user.patient_id, request.form.to_dict(), request.form.get("reason")
        )
    except services.ProfileError as error:
        return _invalid("identity", error)
    return _done("identity")


@bp.post("/change-request/<int:request_id>/withdraw")
@patient_page
def change_withdraw(request_id: int):
    try:
        services.withdraw_change(current_actor(), current_user.patient_id, request_id)
    except Conflict as error:
        return _page("identity", status=409, message=error.message)
    if htmx and not htmx.boosted:
        return _page("identity", message="Your request is withdrawn.")
    flash("Your request is withdrawn.", "success")
    return redirect(url_for("portal_profile.index", _anchor="identity"), 303)
