"""Background jobs the user started: a list, and a progress fragment that polls until the job is done."""

from flask import Blueprint, abort
from flask_login import current_user

from ..access import any_signed_in
from ..extensions import htmx
from ..web import render_page
from .services import recent_jobs, visible_job

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
# htmx stops polling when it gets this status.
STOP_POLLING = 286


@bp.get("")
@any_signed_in
def index():
    jobs = recent_jobs(current_user.tenant_id, current_user.id, current_user.role)
    return render_page("jobs/index.html", jobs=jobs)


@bp.get("/<job_id>")
@any_signed_in
def show(job_id: str):
    job = visible_job(current_user.tenant_id, current_user.id, current_user.role, job_id)
    if job is None:
        abort(404)
    response = render_page("jobs/show.html", block="progress", job=job)
    if job.is_done and htmx and not htmx.boosted:
        response.status_code = STOP_POLLING
    return response
