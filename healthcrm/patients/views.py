"""Staff pages for patients: the list (htmx search and pagination), profile, create, edit, portal invite."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..accounts import registration
from ..accounts import services as accounts
from ..records.forms import AllergyForm, ImmunizationForm
from ..records.labs import FLAG_LABELS
from ..records.patient_summary import patient_summary
from ..web import render_page
from . import services as patients
from .forms import InvitePatientForm, PatientForm
from .models import CARE_STAGES

bp = Blueprint("patients", __name__, url_prefix="/patients")

INVALID = 422
can_read = requires("patient.read")
# Who may change demographics and invite to the portal. Coaches read profiles but do not edit them.
can_edit = requires("patient.edit")


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) < 7 else 1


@bp.get("")
@can_read
def index():
    page = patients.search_patients(
        current_actor(),
        request.args.get("q", ""),
        care_stage=request.args.get("stage", ""),
        page=_page_number(),
    )
    return render_page(
        "patients/index.html",
        block="results",
        page=page,
        stages=CARE_STAGES,
        can_edit=current_user.can("patient.edit"),
    )


def _contacts(form: PatientForm) -> list[patients.ContactInput]:
    return [
        patients.ContactInput(
            entry.form.name.data or "", entry.form.relationship.data, entry.form.phone.data or ""
        )
        for entry in form.emergency_contacts
    ]


def _show_error(form: PatientForm, error: patients.PatientError) -> None:
    target = getattr(form, error.field, None) if error.field else None
    if target is not None and isinstance(target.errors, list) and error.field != "emergency_contacts":
        target.errors.append(error.message)
    else:
        form.form_errors.append(error.message)


def _form_page(form: PatientForm, patient=None, status: int = 200):
    return render_page("patients/edit.html", form=form, patient=patient, status=status)


@bp.route("/new", methods=["GET", "POST"])
@can_edit
def create():
    form = PatientForm()
    form.set_coaches(patients.clinic_coaches(current_user.tenant_id))
    if form.validate_on_submit():
        try:
            patient = patients.create_patient(current_actor(), form.values(), _contacts(form))
        except patients.PatientError as error:
            _show_error(form, error)
        else:
            flash(f"{patient.full_name} was added with MRN {patient.mrn}.", "success")
            return redirect(url_for("patients.show", patient_id=patient.id), code=303)
    return _form_page(form, status=INVALID if request.method == "POST" else 200)


@bp.get("/<int:patient_id>")
@can_read
def show(patient_id: int):
    actor = current_actor()
    patient = patients.get_patient(actor, patient_id)
    if patient is None:
        abort(404)
    return _profile_page(actor, patient, InvitePatientForm(email=patient.email))


def _profile_page(actor, patient, invite_form: InvitePatientForm, status: int = 200):
    summary = patient_summary(actor, patient, current_user.tenant.timezone)
    return render_page(
        "patients/show.html",
        patient=patient,
        invite_form=invite_form,
        can_edit=current_user.can("patient.edit"),
        summary=summary,
        clinical=summary.clinical if summary else None,
        flag_labels=FLAG_LABELS,
        allergy_form=AllergyForm(),
        immunization_form=ImmunizationForm(),
        registration_code=registration.open_code(patient.tenant_id, patient.id),
        status=status,
    )


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@can_edit
def edit(patient_id: int):
    patient = patients.get_patient(current_actor(), patient_id)
    if patient is None:
        abort(404)
    if request.method == "GET":
        form = PatientForm(obj=patient, assigned_coach_id=patient.assigned_coach_id or 0)
        for entry, contact in zip(form.emergency_contacts, patient.emergency_contacts, strict=False):
            entry.form.name.data = contact.name
            entry.form.relationship.data = contact.relationship_to_patient
            entry.form.phone.data = contact.phone
    else:
        form = PatientForm()
    form.set_coaches(patients.clinic_coaches(current_user.tenant_id))
    if form.validate_on_submit():
        try:
            patients.update_patient(current_actor(), patient_id, form.values(), _contacts(form))
        except patients.PatientError as error:
            _show_error(form, error)
        else:
            flash("Profile saved.", "success")
            return redirect(url_for("patients.show", patient_id=patient_id), code=303)
    return _form_page(form, patient, status=INVALID if request.method == "POST" else 200)


@bp.post("/<int:patient_id>/invite")
@can_edit
def invite(patient_id: int):
    form = InvitePatientForm()
    if form.validate_on_submit():
        try:
            user = accounts.invite_patient(current_actor(), patient_id, form.email.data)
        except LookupError:
            abort(404)
        except accounts.AccountError as error:
            form.email.errors.append(error.message)
        else:
            flash(f"Portal invitation sent to {user.email}.", "success")
            return redirect(url_for("patients.show", patient_id=patient_id), code=303)
    actor = current_actor()
    patient = patients.get_patient(actor, patient_id)
    if patient is None:
        abort(404)
    return _profile_page(actor, patient, form, status=INVALID)


@bp.post("/<int:patient_id>/registration-code")
@can_edit
def issue_registration_code(patient_id: int):
    """Issue a code for self-registration and show it once, as a printable letter."""
    try:
        issued = registration.issue_code(current_actor(), patient_id)
    except LookupError:
        abort(404)
    except accounts.AccountError as error:
        flash(error.message, "error")
        return redirect(url_for("patients.show", patient_id=patient_id), code=303)
    return render_page(
        "patients/registration_code.html",
        patient=issued.row.patient,
        issued=issued,
        clinic=current_user.tenant,
        register_url=issued.register_url,
    )


@bp.post("/<int:patient_id>/registration-code/revoke")
@can_edit
def revoke_registration_code(patient_id: int):
    try:
        revoked = registration.revoke_code(current_actor(), patient_id)
    except LookupError:
        abort(404)
    flash("The registration code no longer works." if revoked else "There was no open code.", "info")
    return redirect(url_for("patients.show", patient_id=patient_id), code=303)
