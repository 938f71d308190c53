"""The staff side of self-service: the refill queue (approve or deny, once), the patient's self-care page
(symptom chart and table, adherence, care plan with its versions and acknowledgements, dose schedules),
loaded into the patient page, and the care plan editor."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..errors import Conflict
from ..web import render_page
from . import adherence, care_plans, handlers, symptoms  # noqa: F401 - handlers register
from . import refills as refill_service
from .clinic import SelfCareError, patient_for

bp = Blueprint("care_selfcare", __name__, url_prefix="/care")
INVALID = 422


@bp.get("/refills")
@requires("care.refills")
def refills():
    queue = refill_service.refill_queue(current_actor())
    return render_page("selfcare/staff_refills.html", queue=queue, errors={}, message=None)


@bp.post("/refills/<int:request_id>/decide")
@requires("care.refills")
def refill_decide(request_id: int):
    actor = current_actor()
    try:
        refill_service.decide_refill(
            actor, request_id, request.form.get("decision"), request.form.get("reason")
        )
    except Conflict as error:
        queue = refill_service.refill_queue(actor)
        return render_page(
            "selfcare/staff_refills.html", queue=queue, errors={}, message=error.message, status=409
        )
    except SelfCareError as error:
        queue = refill_service.refill_queue(actor)
        return render_page(
            "selfcare/staff_refills.html",
            queue=queue,
            errors={request_id: error.message},
            message=None,
            status=INVALID,
        )
    flash("Decided; the patient is told.", "success")
    return redirect(url_for("care_selfcare.refills"), 303)


def _patient_page(patient_id: int, *, status: int = 200, **extra):
    actor = current_actor()
    log = symptoms.symptom_log(actor, patient_id)
    week = adherence.week_view(actor, patient_id)
    plan = care_plans.care_plan(actor, patient_id)
    return render_page(
        "selfcare/staff_patient.html",
        block="self_care",
        patient=plan.patient,
        log=log,
        week=week,
        plan=plan,
        status=status,
        schedule_errors=extra.pop("schedule_errors", {}),
        **extra,
    )


@bp.get("/patients/<int:patient_id>/self-care")
@requires("clinical.read")
def patient(patient_id: int):
    return _patient_page(patient_id)


@bp.post("/patients/<int:patient_id>/prescriptions/<int:prescription_id>/schedule")
@requires("record.write")
def schedule_edit(patient_id: int, prescription_id: int):
    try:
        adherence.set_schedule(current_actor(), patient_id, prescription_id, request.form.get("times"))
    except SelfCareError as error:
        return _patient_page(patient_id, status=INVALID, schedule_errors={prescription_id: error.message})
    flash("Dose times saved.", "success")
    return redirect(url_for("care_selfcare.patient", patient_id=patient_id) + "#adherence", 303)


@bp.route("/patients/<int:patient_id>/care-plan", methods=["GET", "POST"])
@requires("care.care_plans")
def care_plan_edit(patient_id: int):
    actor = current_actor()
    patient_for(actor, patient_id, "care.care_plans")
    errors: dict[str, str] = {}
    message = None
    status = 200
    current = care_plans.current_version(actor.tenant_id, patient_id)
    form = {
        "goals": request.form.get("goals", current.goals if current else ""),
        "instructions": request.form.get("instructions", current.instructions if current else ""),
        "based_on": request.form.get("based_on", str(current.number if current else 0)),
    }
    if request.method == "POST":
        try:
            based_on = int(form["based_on"] or 0)
        except ValueError:
            based_on = -1
        try:
            care_plans.publish_version(
                actor, patient_id, goals=form["goals"], instructions=form["instructions"], based_on=based_on
            )
        except Conflict as error:
            message, status = error.message, 409
        except SelfCareError as error:
            errors[error.field or ""] = error.message
            status = INVALID
        else:
            flash("Care plan saved as a new version; the patient is told.", "success")
            return redirect(url_for("care_selfcare.patient", patient_id=patient_id) + "#care-plan", 303)
    plan = care_plans.care_plan(actor, patient_id)
    return render_page(
        "selfcare/staff_care_plan_edit.html",
        plan=plan,
        form=form,
        errors=errors,
        message=message,
        status=status,
    )
