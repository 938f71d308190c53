"""Staff choose what the patient sees: hold one result back (with a reason and a release date), release it
early, and set a finalized record's summary for the patient and whether its notes show."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..clock import clinic_today
from ..errors import NotFound
from ..tenancy import get_scoped
from ..web import render_page
from . import patient_view, result_holds
from .forms import ResultHoldForm
from .models import LabResult
from .services import RecordError

bp = Blueprint("result_holds", __name__, url_prefix="/care")

INVALID = 422
holders = requires("result.hold")


@bp.app_template_global()
def results_release_state(patient) -> list[LabResult]:
    """The patient's latest results with their release state (the staff patient page's section)."""
    return result_holds.recent_results(current_actor(), patient.id)


@bp.app_template_global()
def clinic_day():
    """The clinic's day, for a result's release state."""
    return clinic_today(current_user.tenant.timezone)


def _patient_page(result: LabResult):
    return redirect(
        url_for("patients.show", patient_id=result.patient_id, _anchor="results-release"), code=303
    )


@bp.route("/results/<int:result_id>/hold", methods=["GET", "POST"])
@holders
def hold(result_id: int):
    actor = current_actor()
    if request.method == "GET":
        result = result_holds.result_for_hold(actor, result_id)
    else:  # the hold it saves is audited, or the form comes back
        result = get_scoped(LabResult, result_id, actor.tenant_id)
        if result is None:
            abort(404)
    form = ResultHoldForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                result_holds.hold_result(actor, result_id, form.reason.data, form.until.data)
            except RecordError as error:
                getattr(form, error.field).errors = [*getattr(form, error.field).errors, error.message]
            else:
                flash("The result is held from the patient until the release date.", "success")
                return _patient_page(result)
        status = INVALID
    return render_page(
        "records/result_hold.html",
        form=form,
        result=result,
        longest=current_user.tenant.result_hold_max_days,
        status=status,
    )


@bp.post("/results/<int:result_id>/release")
@holders
def release(result_id: int):
    actor = current_actor()
    try:
        result = result_holds.release_result(actor, result_id)
    except NotFound:
        abort(404)
    except RecordError as error:
        flash(error.message, "error")
        result = get_scoped(LabResult, result_id, actor.tenant_id)
        return _patient_page(result)
    flash("Released: the patient can see the result now and is told.", "success")
    return _patient_page(result)


@bp.post("/records/<int:record_id>/patient-view")
@requires("record.addendum")
def record_patient_view(record_id: int):
    try:
        patient_view.set_record_patient_view(
            current_actor(),
            record_id,
            request.form.get("patient_summary"),
            request.form.get("notes_visible_to_patient") == "y",
        )
    except NotFound:
        abort(404)
    except RecordError as error:
        flash(error.message, "error")
    else:
        flash("Saved what the patient sees of this record.", "success")
    return redirect(url_for("records.show", record_id=record_id, _anchor="patient-view"), code=303)
