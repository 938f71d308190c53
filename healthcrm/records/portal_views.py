"""The patient's own records in the portal: visits, results over time, medications, allergies and the
problem list. Thin: every page asks records/patient_view.py, which decides what the patient may see (finalized
visits only, notes only when a clinician showed them, no held result) and audits the read. The patient id
is always the session's; a record of anyone else answers 404."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from ..access import current_actor, requires
from ..web import render_page
from . import (
    patient_view,
    portal_feed,  # noqa: F401 - registers the timeline and dashboard sources
)
from .flowsheet import key_of, sparkline

bp = Blueprint("portal_records", __name__, url_prefix="/portal/records")
patient_page = requires("portal.use")


@bp.get("")
@patient_page
def index():
    records = patient_view.patient_records(current_actor(), current_user.patient_id)
    return render_page("portal/records/index.html", records=records)


@bp.get("/<int:record_id>")
@patient_page
def show(record_id: int):
    record = patient_view.patient_record(current_actor(), current_user.patient_id, record_id)
    return render_page("portal/records/show.html", record=record, plain_flag=patient_view.plain_flag)


@bp.get("/results")
@patient_page
def labs():
    tests = patient_view.patient_lab_tests(current_actor(), current_user.patient_id)
    return render_page(
        "portal/records/labs.html",
        tests=tests,
        key_of=key_of,
        sparkline=sparkline,
        plain_flag=patient_view.plain_flag,
    )


@bp.get("/results/<path:key>")
@patient_page
def lab(key: str):
    found = patient_view.patient_lab_test(current_actor(), current_user.patient_id, key)
    return render_page(
        "portal/records/lab.html",
        found=found,
        test=found.test,
        timezone=current_user.tenant.timezone,
        plain_flag=patient_view.plain_flag,
    )


@bp.get("/medications")
@patient_page
def medications():
    meds = patient_view.patient_medications(current_actor(), current_user.patient_id)
    return render_page("portal/records/medications.html", meds=meds)


@bp.get("/health")
@patient_page
def health():
    summary = patient_view.patient_health(current_actor(), current_user.patient_id)
    return render_page("portal/records/health.html", summary=summary)
