"""Records past their retention (admins): the report, legal holds, the purge's confirmation."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..errors import NotFound
from ..files.checks import human_size
from ..web import render_page, safe_next
from . import services
from .models import HOLD_REASON_MAX_CHARS

bp = Blueprint("retention_purge", __name__, url_prefix="/admin/retention")


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) < 7 else 1


def _report_page(*, error: str = "", status: int = 200):
    report = services.due_report(current_actor(), page=_page_number(), held=request.args.get("held", ""))
    return render_page("retention/due.html", block="report", status=status, report=report, error=error)


@bp.get("/due")
@requires("audit.retention")
def due():
    return _report_page()


def _hold_page(patient_id: int, *, error: str = "", reason: str = "", status: int = 200):
    try:
        patient, hold = services.patient_for_hold(current_actor(), patient_id)
    except NotFound:
        abort(404)
    return render_page(
        "retention/hold.html",
        status=status,
        patient=patient,
        hold=hold,
        error=error,
        reason=reason,
        max_chars=HOLD_REASON_MAX_CHARS,
        next=safe_next(request.values.get("next"), ""),
    )


@bp.get("/patients/<int:patient_id>/hold")
@requires("audit.retention")
def hold(patient_id: int):
    return _hold_page(patient_id)


@bp.post("/patients/<int:patient_id>/hold")
@requires("audit.retention")
def place_hold(patient_id: int):
    reason = request.form.get("reason", "")
    try:
        services.place_hold(current_actor(), patient_id, reason)
    except NotFound:
        abort(404)
    except services.RetentionError as error:
        return _hold_page(patient_id, error=error.message, reason=reason[:2000], status=422)
    flash("The records are on legal hold: no purge will remove them.")
    return redirect(safe_next(request.form.get("next"), url_for(".hold", patient_id=patient_id)), code=303)


@bp.post("/patients/<int:patient_id>/hold/release")
@requires("audit.retention")
def release_hold(patient_id: int):
    try:
        services.release_hold(current_actor(), patient_id)
    except NotFound:
        abort(404)
    except services.RetentionError as error:
        return _hold_page(patient_id, error=error.message, status=422)
    flash("The legal hold is released.")
    return redirect(safe_next(request.form.get("next"), url_for(".hold", patient_id=patient_id)), code=303)


def _confirm_page(ids: list[str], *, error: str = "", status: int = 200):
    try:
        plan = services.plan_purge(current_actor(), ids)
    except services.RetentionError as problem:
        return _report_page(error=problem.message, status=422)
    return render_page(
        "retention/confirm.html",
        status=status,
        plan=plan,
        size=human_size(plan.bytes),
        word=services.CONFIRM_WORD,
        error=error,
    )


@bp.post("/purge/review")
@requires("audit.retention")
def review_purge():
    return _confirm_page(request.form.getlist("patient_ids"))


@bp.post("/purge")
@requires("audit.retention")
def purge():
    ids = request.form.getlist("patient_ids")
    try:
        jobs = services.confirm_purge(current_actor(), ids, request.form.get("confirm", ""))
    except services.RetentionError as error:
        if error.field == "confirm":
            return _confirm_page(ids, error=error.message, status=422)
        return _report_page(error=error.message, status=422)
    flash(f"Purge started for {len(jobs)} patient{'s' if len(jobs) != 1 else ''}; see Jobs for progress.")
    return redirect(url_for(".due"), code=303)
