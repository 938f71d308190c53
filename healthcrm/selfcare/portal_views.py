"""The patient's self-service pages: refill requests, the symptom log, dose marks, the care plan. The
patient id always comes from the session (`current_user.patient_id`); a prescription or care plan id in a
form that is not this patient's answers 404 (the services raise NotFound) and changes nothing."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..extensions import htmx
from ..web import render_page
from . import adherence, care_plans, handlers, symptoms  # noqa: F401 - handlers register
from . import refills as refill_service
from .clinic import SelfCareError

bp = Blueprint("portal_selfcare", __name__, url_prefix="/portal")
INVALID = 422
patient_page = requires("portal.use")


def _int(name: str) -> int | None:
    value = request.form.get(name) or request.args.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        return None


# --- refills ---------------------------------------------------------------------------------------------


@bp.get("/refills")
@patient_page
def refills():
    view = refill_service.patient_refills(current_actor(), current_user.patient_id)
    return render_page("selfcare/portal_refills.html", view=view)


@bp.route("/refills/new", methods=["GET", "POST"])
@patient_page
def refill_new():
    actor = current_actor()
    errors: dict[str, str] = {}
    chosen = _int("prescription_id")
    note = request.form.get("note", "")
    status = 200
    if request.method == "POST":
        try:
            refill_service.request_refill(actor, current_user.patient_id, chosen, note)
        except SelfCareError as error:
            errors[error.field or ""] = error.message
            status = INVALID
        else:
            flash("Your refill request is with the care team. You will be told when they answer.", "success")
            return redirect(url_for("portal_selfcare.refills"), 303)
    view = refill_service.patient_refills(actor, current_user.patient_id)
    return render_page(
        "selfcare/portal_refill_new.html", view=view, chosen=chosen, note=note, errors=errors, status=status
    )


# --- symptoms --------------------------------------------------------------------------------------------


@bp.route("/symptoms", methods=["GET", "POST"], endpoint="symptoms")
@patient_page
def symptoms_page():  # endpoint "symptoms" (the module `symptoms` is the service)
    actor = current_actor()
    errors: dict[str, str] = {}
    form = {
        "symptom": request.form.get("symptom", ""),
        "other_name": request.form.get("other_name", ""),
        "severity": request.form.get("severity", ""),
        "notes": request.form.get("notes", ""),
        "occurred_at": request.form.get("occurred_at") or symptoms.default_time(actor.tenant_id),
    }
    status = 200
    if request.method == "POST":
        try:
            symptoms.log_symptom(actor, current_user.patient_id, **form)
        except symptoms.SymptomErrors as error:
            errors = error.by_field()
            status = INVALID
        else:
            flash("Added to your symptom log.", "success")
            return redirect(url_for("portal_selfcare.symptoms"), 303)
    log = symptoms.symptom_log(actor, current_user.patient_id)
    return render_page(
        "selfcare/portal_symptoms.html",
        log=log,
        form=form,
        errors=errors,
        choices=symptoms.SYMPTOMS,
        status=status,
    )


# --- doses -----------------------------------------------------------------------------------------------


def _week_of() -> date | None:
    try:
        return date.fromisoformat(request.args.get("week", ""))
    except ValueError:
        return None


@bp.get("/doses")
@patient_page
def doses():
    week = adherence.week_view(current_actor(), current_user.patient_id, _week_of())
    return render_page("selfcare/portal_doses.html", week=week)


@bp.post("/doses/mark")
@patient_page
def dose_mark():
    actor = current_actor()
    day = request.form.get("day")
    try:
        result = adherence.mark_dose(
            actor,
            current_user.patient_id,
            _int("prescription_id"),
            day,
            request.form.get("slot"),
            request.form.get("status"),
        )
    except SelfCareError as error:
        if htmx:
            # The cell the form came from (the target), with the reason in it.
            slot = (request.form.get("slot") or "").replace(":", "")
            cell_key = f"dose-{_int('prescription_id')}-{day}-{slot}"
            return render_page(
                "selfcare/portal_doses.html",
                block="dose_error",
                message=error.message,
                cell_key=cell_key,
                status=INVALID,
            )
        week = adherence.week_view(actor, current_user.patient_id, _week_of())
        return render_page("selfcare/portal_doses.html", week=week, message=error.message, status=INVALID)
    if htmx:
        return render_page(
            "selfcare/portal_doses.html",
            block="dose_cell",
            cell=result.cell,
            drug=result.current.prescription.drug,
            today=result.cell.day,
            already=result.already,
        )
    if result.already:
        flash("That dose was marked already; it stays as it was.", "info")
    return redirect(url_for("portal_selfcare.doses", week=result.cell.day.isoformat()), 303)


# --- the care plan ---------------------------------------------------------------------------------------


@bp.get("/care-plan")
@patient_page
def care_plan():
    plan = care_plans.care_plan(current_actor(), current_user.patient_id)
    return render_page("selfcare/portal_care_plan.html", plan=plan)


@bp.post("/care-plan/acknowledge")
@patient_page
def care_plan_acknowledge():
    actor = current_actor()
    try:
        care_plans.acknowledge(actor, current_user.patient_id, _int("version_id"))
    except SelfCareError as error:
        plan = care_plans.care_plan(actor, current_user.patient_id)
        return render_page("selfcare/portal_care_plan.html", plan=plan, message=error.message, status=INVALID)
    flash("Thank you: your care team can see that you read the plan.", "success")
    return redirect(url_for("portal_selfcare.care_plan"), 303)
