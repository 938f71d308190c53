"""Staff pages for medical records: the list (htmx search and filters), a record, the record form (with
"Add …" buttons for more rows), finalizing, addenda, and the ICD-10-CM typeahead."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..accounts.models import DOCTOR
from ..files.listing import record_files
from ..patients import services as patients
from ..tenancy import get_scoped
from ..web import render_fragment, render_page
from . import allergies, clinic_settings, record_templates, search, vitals
from . import services as records
from .forms import (
    ROW_SECTIONS,
    AddendumForm,
    AllergyForm,
    ClinicalSettingsForm,
    ImmunizationForm,
    RecordForm,
    TemplateForm,
)
from .icd10 import (
    SEARCH_QUERY_MAX_CHARS,
    SEARCH_QUERY_MIN_CHARS,
    highlight,
    query_too_long,
    query_words,
    search_codes,
)
from .labs import FLAG_LABELS, KNOWN_TESTS
from .models import RecordTemplate

bp = Blueprint("records", __name__)
# `vital(record, "weight")` in any template: the value in the record's clinic's units, with the unit.
bp.add_app_template_global(vitals.record_vital, "vital")

INVALID = 422
can_read = requires("record.read")
can_write = requires("record.write")
can_finalize = requires("record.finalize")
can_add_addendum = requires("record.addendum")
# The blocks of records/edit.html that render one row of each repeated section.
ROW_BLOCKS = dict(zip(ROW_SECTIONS, ("diagnosis_row", "prescription_row", "lab_row"), strict=True))


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _filters() -> records.RecordFilters:
    return records.RecordFilters(
        query=request.args.get("q", "").strip()[: records.MAX_QUERY_LENGTH],
        doctor_id=_int_arg("doctor"),
        status=request.args.get("status", ""),
        date_from=_date_arg("from"),
        date_to=_date_arg("to"),
        has_attachments=request.args.get("attachments") == "1",
        follow_up_due=request.args.get("follow_up") == "1",
    )


@bp.get("/records")
@can_read
def index():
    page = records.search_records(current_actor(), _filters(), page=_int_arg("page") or 1)
    return render_page(
        "records/index.html",
        block="results",
        page=page,
        matches=search.record_matches(page.records, page.filters.query),
        doctors=records.clinic_doctors(current_user.tenant_id),
        can_write=current_user.can("record.write"),
    )


def _show_error(form: RecordForm, error: records.RecordError) -> None:
    target = form._fields.get(error.field or "")
    if target is not None and error.field not in ("diagnoses", "prescriptions", "labs"):
        target.errors.append(error.message)
    else:
        form.form_errors.append(error.message)


def _form_page(form: RecordForm, patient, record=None, version=None, status: int = 200, added_row=None):
    version = version or (record.template_version if record else None)
    return render_page(
        "records/edit.html",
        form=form,
        patient=patient,
        record=record,
        version=version,
        sections=set(version.sections) if version else set(record_templates.SECTIONS),
        suggested=form.suggested_text(version),
        templates=[] if record else record_templates.clinic_templates(current_user.tenant_id),
        known_tests=KNOWN_TESTS,
        # The row an "Add …" button just added (its first box takes the focus); `fragment` marks htmx's
        # one-row answers, whose button replaces the page's out of band.
        added_row=added_row.id if added_row else None,
        fragment=False,
        status=status,
    )


def _chosen_version(form: RecordForm):
    """The template version this new record starts from: `?template=` on GET, the hidden field on POST."""
    tenant_id = current_user.tenant_id
    if request.method == "POST":
        raw = form.template_version_id.data or ""
        return record_templates.get_version(tenant_id, int(raw)) if raw.isdigit() else None
    template_id = _int_arg("template")
    return record_templates.current_version(tenant_id, template_id) if template_id else None


@bp.route("/patients/<int:patient_id>/records/new", methods=["GET", "POST"])
@can_write
def create(patient_id: int):
    actor = current_actor()
    patient = patients.get_patient(actor, patient_id)
    if patient is None:
        abort(404)
    form = RecordForm()
    form.set_zone(current_user.tenant.timezone)
    form.set_units(current_user.tenant.unit_system)
    form.set_doctors(records.clinic_doctors(current_user.tenant_id))
    version = _chosen_version(form)
    if request.method == "GET":
        form.default_visit_time()
        if current_user.role == DOCTOR:
            form.doctor_id.data = current_user.id
        if version is not None:
            form.apply_template(version)
    elif "add_row" in request.form:
        # An "Add …" button without JavaScript: one more row, what was typed kept, nothing saved.
        return _form_page(form, patient, version=version, added_row=form.add_row(request.form["add_row"]))
    if form.validate_on_submit():
        try:
            record = records.create_record(
                actor, patient_id, form.to_input(), template_version_id=version.id if version else None
            )
        except records.RecordError as error:
            _show_error(form, error)
        else:
            flash("Draft saved.", "success")
            return redirect(url_for("records.show", record_id=record.id), code=303)
    return _form_page(form, patient, version=version, status=INVALID if request.method == "POST" else 200)


@bp.get("/records/<int:record_id>")
@can_read
def show(record_id: int):
    actor = current_actor()
    record = records.get_record(actor, record_id)
    if record is None:
        abort(404)
    return _record_page(actor, record, AddendumForm())


def _record_page(actor, record, addendum_form: AddendumForm, status: int = 200):
    return render_page(
        "records/show.html",
        record=record,
        history=records.record_history(record),
        addendum_form=addendum_form,
        files=record_files(actor, record),
        flag_labels=FLAG_LABELS,
        status=status,
    )


@bp.route("/records/<int:record_id>/edit", methods=["GET", "POST"])
@can_write
def edit(record_id: int):
    actor = current_actor()
    record = records.get_record(actor, record_id, audit=request.method == "GET")
    if record is None:
        abort(404)
    if not record.is_draft:
        flash("This record is finalized; add an addendum to correct it.", "warning")
        return redirect(url_for("records.show", record_id=record.id), code=303)
    form = RecordForm()
    form.set_zone(current_user.tenant.timezone)
    form.set_units(current_user.tenant.unit_system)
    form.set_doctors(records.clinic_doctors(current_user.tenant_id))
    if request.method == "GET":
        form.fill_from(record)
    elif "add_row" in request.form:
        return _form_page(form, record.patient, record, added_row=form.add_row(request.form["add_row"]))
    elif form.validate_on_submit():
        try:
            records.update_record(actor, record_id, form.to_input())
        except records.RecordError as error:
            _show_error(form, error)
        else:
            flash("Draft saved.", "success")
            return redirect(url_for("records.show", record_id=record_id), code=303)
    return _form_page(form, record.patient, record, status=INVALID if request.method == "POST" else 200)


@bp.post("/records/<int:record_id>/delete")
@can_write
def delete(record_id: int):
    try:
        patient_id = records.delete_record(current_actor(), record_id)
    except LookupError:
        abort(404)
    except records.RecordError as error:
        flash(error.message, "error")
        return redirect(url_for("records.show", record_id=record_id), code=303)
    flash("Draft deleted.", "info")
    return redirect(url_for("patients.show", patient_id=patient_id), code=303)


@bp.post("/records/<int:record_id>/finalize")
@can_finalize
def finalize(record_id: int):
    try:
        records.finalize_record(current_actor(), record_id)
    except LookupError:
        abort(404)
    except records.RecordError as error:
        flash(error.message, "error")
    else:
        flash("Record finalized. It can no longer change; corrections are addenda.", "success")
    return redirect(url_for("records.show", record_id=record_id), code=303)


@bp.post("/records/<int:record_id>/addenda")
@can_add_addendum
def add_addendum(record_id: int):
    form = AddendumForm()
    actor = current_actor()
    if form.validate_on_submit():
        try:
            records.add_addendum(actor, record_id, form.text.data)
        except LookupError:
            abort(404)
        except records.RecordError as error:
            form.text.errors.append(error.message)
        else:
            flash("Addendum added.", "success")
            return redirect(url_for("records.show", record_id=record_id), code=303)
    record = records.get_record(actor, record_id, audit=False)
    if record is None:
        abort(404)
    return _record_page(actor, record, form, status=INVALID)


@bp.get("/records/form-rows/<section>/<int:index>")
@can_write
def form_row(section: str, index: int):
    """The empty row `index` of the record form's diagnoses, prescriptions or labs, for its "Add …" button,
    and that button again, out of band, asking for the row after it (or saying the section is full)."""
    form = RecordForm(formdata=None)
    row = form.empty_row(section, index)
    if row is None:
        abort(404)
    return render_fragment(
        "records/edit.html",
        ROW_BLOCKS[section],
        f"add_{section}",
        form=form,
        row=row,
        added_row=row.id,
        fragment=True,
    )


@bp.get("/records/icd10/<int:row>")
@can_read
def icd10_search(row: int):
    """The ICD-10-CM typeahead of diagnosis row `row`: options for that row's listbox, and what its live
    region says (how many codes, or that none match)."""
    if row >= records.MAX_DIAGNOSES:
        abort(404)
    query = request.args.get("q") or request.args.get(f"diagnoses-{row}-code", "")
    return render_page(
        "records/_icd10_options.html",
        codes=search_codes(query),
        row=row,
        searched=len(query.strip()) >= SEARCH_QUERY_MIN_CHARS,
        too_long=query_too_long(query),
        max_chars=SEARCH_QUERY_MAX_CHARS,
        words=query_words(query),
        highlight=highlight,
    )


def _patient_list_post(form, add, to_input, patient_id: int, done: str):
    if form.validate_on_submit():
        try:
            add(current_actor(), patient_id, to_input(form))
        except LookupError:
            abort(404)
        except records.RecordError as error:
            flash(error.message, "error")
        else:
            flash(done, "success")
    else:
        flash(
            " ".join(f"{form[name].label.text}: {' '.join(errors)}" for name, errors in form.errors.items()),
            "error",
        )
    return redirect(url_for("patients.show", patient_id=patient_id, _anchor="clinical"), code=303)


@bp.post("/patients/<int:patient_id>/allergies")
@can_write
def add_allergy(patient_id: int):
    return _patient_list_post(
        AllergyForm(),
        allergies.add_allergy,
        lambda f: allergies.AllergyInput(
            f.substance.data, f.reaction.data or "", f.severity.data, f.status.data
        ),
        patient_id,
        "Allergy recorded.",
    )


@bp.post("/patients/<int:patient_id>/immunizations")
@can_write
def add_immunization(patient_id: int):
    return _patient_list_post(
        ImmunizationForm(),
        allergies.add_immunization,
        lambda f: allergies.ImmunizationInput(
            f.vaccine.data,
            f.given_on.data,
            f.dose_number.data,
            f.lot.data or "",
            f.site.data or "",
            f.given_by.data or "",
        ),
        patient_id,
        "Immunization recorded.",
    )


# --- record templates (admins) ---------------------------------------------------------------------------

can_manage_templates = requires("record_template.manage")


def _show_template_error(form: TemplateForm, error: records.RecordError) -> None:
    target = form._fields.get(error.field or "")
    (target.errors if target is not None else form.form_errors).append(error.message)


def _templates_page(form: TemplateForm, status: int = 200):
    return render_page(
        "records/templates.html",
        form=form,
        status=status,
        templates=record_templates.clinic_templates(current_user.tenant_id, include_archived=True),
        used=record_templates.version_counts(current_user.tenant_id),
        sections=record_templates.SECTIONS,
    )


@bp.get("/record-templates")
@can_manage_templates
def templates():
    form = TemplateForm(sections=list(record_templates.SECTIONS))
    return _templates_page(form)


@bp.post("/record-templates")
@can_manage_templates
def create_template():
    form = TemplateForm()
    if form.validate_on_submit():
        try:
            template = record_templates.create_template(current_actor(), form.to_input())
        except records.RecordError as error:
            _show_template_error(form, error)
        else:
            flash(f"Template “{template.name}” created.", "success")
            return redirect(url_for("records.templates"), code=303)
    return _templates_page(form, status=INVALID)


@bp.route("/record-templates/<int:template_id>", methods=["GET", "POST"])
@can_manage_templates
def edit_template(template_id: int):
    template = get_scoped(RecordTemplate, template_id, current_user.tenant_id)
    if template is None:
        abort(404)
    form = TemplateForm()
    if request.method == "GET":
        form.fill_from(template)
    elif form.validate_on_submit():
        try:
            record_templates.update_template(current_actor(), template_id, form.to_input())
        except records.RecordError as error:
            _show_template_error(form, error)
        else:
            flash("Template saved. Records made before keep the version they came from.", "success")
            return redirect(url_for("records.edit_template", template_id=template_id), code=303)
    return render_page(
        "records/template_edit.html",
        form=form,
        record_template=template,
        sections=record_templates.SECTIONS,
        status=INVALID if request.method == "POST" else 200,
    )


@bp.post("/record-templates/<int:template_id>/archive")
@can_manage_templates
def archive_template(template_id: int):
    return _set_template_active(
        template_id, False, "Template archived: it is no longer offered for new records."
    )


@bp.post("/record-templates/<int:template_id>/activate")
@can_manage_templates
def activate_template(template_id: int):
    return _set_template_active(template_id, True, "Template offered again for new records.")


def _set_template_active(template_id: int, active: bool, done: str):
    try:
        record_templates.set_template_active(current_actor(), template_id, active)
    except LookupError:
        abort(404)
    flash(done, "success")
    return redirect(url_for("records.templates"), code=303)


@bp.route("/clinic/clinical-settings", methods=["GET", "POST"])
@can_manage_templates
def clinical_settings():
    tenant = current_user.tenant
    form = ClinicalSettingsForm(
        unit_system=tenant.unit_system,
        score_input_max_age_days=tenant.score_input_max_age_days,
        result_hold_max_days=tenant.result_hold_max_days,
    )
    if form.validate_on_submit():
        try:
            clinic_settings.set_clinical_settings(
                current_actor(),
                form.unit_system.data,
                form.score_input_max_age_days.data,
                form.result_hold_max_days.data,
            )
        except records.RecordError as error:
            _show_template_error(form, error)
        else:
            flash("Clinical settings saved.", "success")
            return redirect(url_for("records.clinical_settings"), code=303)
    return render_page(
        "records/clinic_settings.html", form=form, status=INVALID if request.method == "POST" else 200
    )
