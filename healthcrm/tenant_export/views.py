"""Export clinic data (admins): start, progress, download for 24 hours."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, url_for

from ..access import current_actor, requires
from ..files.responses import file_response
from ..files.storage import ObjectNotFoundError, attachment_disposition, get_storage
from ..web import render_page
from . import services

bp = Blueprint("tenant_export", __name__, url_prefix="/admin/export")
CHUNK = 1024 * 1024


def _page(job=None, *, gone: bool = False, status: int = 200):
    actor = current_actor()
    return render_page(
        "tenant_export/index.html",
        block="status",
        status=status,
        job=job,
        gone=gone,
        exports=services.recent_exports(actor),
        downloadable=services.is_downloadable,
    )


@bp.get("")
@requires("clinic.export")
def index():
    return _page()


@bp.post("")
@requires("clinic.export")
def start():
    job_id = services.start_export(current_actor())
    return redirect(url_for("tenant_export.show", job_id=job_id), code=303)


@bp.get("/<job_id>")
@requires("clinic.export")
def show(job_id: str):
    return _page(services.export_job(current_actor(), job_id))


@bp.get("/<job_id>/download")
@requires("clinic.export")
def download(job_id: str):
    try:
        key, name = services.download(current_actor(), job_id)
        stream = get_storage(current_app).open_stream(key)
    except (services.ExportGone, ObjectNotFoundError):
        return _page(gone=True, status=410)

    def chunks():
        try:
            while chunk := stream.read(CHUNK):
                yield chunk
        finally:
            stream.close()

    return file_response(chunks(), "application/zip", attachment_disposition(name))
