"""Export clinic data (admins): start, progress, download for 24 hours; the schedule that starts it by
itself."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..extensions import htmx
from ..files.responses import file_response
from ..files.storage import ObjectNotFoundError, attachment_disposition, get_storage
from ..web import render_page
from . import schedule as schedules
from . import services
from .models import MONTH_DAY_MAX, WEEKDAYS

bp = Blueprint("tenant_export", __name__, url_prefix="/admin/export")
CHUNK = 1024 * 1024


def _page(
    job=None,
    *,
    gone: bool = False,
    status: int = 200,
    block: str = "status",
    errors: dict | None = None,
    form: dict | None = None,
    saved: bool = False,
):
    actor = current_actor()
    schedule = schedules.current_schedule(actor)
    return render_page(
        "tenant_export/index.html",
        block=block,
        status=status,
        job=job,
        gone=gone,
        exports=services.recent_exports(actor),
        downloadable=services.is_downloadable,
        schedule=schedule,
        last_run=schedules.last_scheduled_job(actor, schedule),
        errors=errors or {},
        form=form,
        saved=saved,
        weekdays=WEEKDAYS,
        month_day_max=MONTH_DAY_MAX,
        month_day_hint=schedules.MONTH_DAY_HINT,
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


@bp.post("/schedule")
@requires("clinic.export")
def save_schedule():
    try:
        schedules.save_schedule(current_actor(), request.form.to_dict())
    except schedules.ScheduleError as error:
        return _page(
            block="schedule", errors={error.field: error.message}, form=request.form.to_dict(), status=422
        )
    if htmx and not htmx.boosted:
        return _page(block="schedule", saved=True)
    flash("Export schedule saved.", "success")
    return redirect(url_for("tenant_export.index", _anchor="schedule"), code=303)


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
