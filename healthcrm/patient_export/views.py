"""Download my record (portal) and Export the record (staff): start the job, watch it, take the ZIP."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..files.responses import file_response
from ..files.storage import ObjectNotFoundError, attachment_disposition, get_storage
from ..web import render_page
from . import services

portal_bp = Blueprint("portal_export", __name__, url_prefix="/portal/export")
staff_bp = Blueprint("patient_export", __name__, url_prefix="/patients/<int:patient_id>/export")
CHUNK = 256 * 1024


def _chunks(stream):
    try:
        while chunk := stream.read(CHUNK):
            yield chunk
    finally:
        stream.close()


def _send(actor, patient_id: int, job_id: str):
    try:
        found = services.download(actor, patient_id, job_id)
        stream = get_storage(current_app).open_stream(found.key)
    except (services.ExportGone, ObjectNotFoundError):
        return render_page(
            "portal/export.html" if actor.role == "patient" else "patients/export.html",
            status=410,
            gone=True,
            job=None,
            patient_id=patient_id,
            downloadable=False,
        )
    return file_response(_chunks(stream), "application/zip", attachment_disposition(found.name))


def _page(template: str, patient_id: int, job_id: str | None = None):
    actor = current_actor()
    job = (
        services.export_job(actor, patient_id, job_id)
        if job_id
        else services.latest_export(actor, patient_id)
    )
    return render_page(
        template,
        block="status",
        job=job,
        gone=False,
        patient_id=patient_id,
        downloadable=bool(job and services.is_downloadable(job)),
    )


@portal_bp.get("")
@requires("portal.use")
def index():
    return _page("portal/export.html", current_user.patient_id)


@portal_bp.post("")
@requires("portal.use")
def start():
    job_id = services.start_export(current_actor(), current_user.patient_id)
    return redirect(url_for("portal_export.show", job_id=job_id), code=303)


@portal_bp.get("/<job_id>")
@requires("portal.use")
def show(job_id: str):
    return _page("portal/export.html", current_user.patient_id, job_id)


@portal_bp.get("/<job_id>/download")
@requires("portal.use")
def download(job_id: str):
    return _send(current_actor(), current_user.patient_id, job_id)


@staff_bp.get("")
@requires("patient.export")
def staff_index(patient_id: int):
    return _page("patients/export.html", patient_id)


@staff_bp.post("")
@requires("patient.export")
def staff_start(patient_id: int):
    job_id = services.start_export(current_actor(), patient_id)
    return redirect(url_for("patient_export.staff_show", patient_id=patient_id, job_id=job_id), code=303)


@staff_bp.get("/<job_id>")
@requires("patient.export")
def staff_show(patient_id: int, job_id: str):
    return _page("patients/export.html", patient_id, job_id)


@staff_bp.get("/<job_id>/download")
@requires("patient.export")
def staff_download(patient_id: int, job_id: str):
    return _send(current_actor(), patient_id, job_id)
