"""Background jobs the user started: a list, and a progress fragment that polls until the job is done."""

from flask import Blueprint, abort
from flask_login import current_user

from ..access import any_signed_in
from ..extensions import db, htmx
from ..tenancy import get_scoped, scoped
from ..web import render_page
from .models import Job

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
# htmx stops polling when it gets this status.
STOP_POLLING = 286


def _visible(query):
    # Admins see the clinic's jobs; everyone else the jobs they started.
    if current_user.role != "admin":
        query = query.where(Job.user_id == current_user.id)
    return query


@bp.get("")
@any_signed_in
def index():
    jobs = db.session.scalars(
        _visible(scoped(Job, current_user.tenant_id)).order_by(Job.created_at.desc()).limit(50)
    )
    return render_page("jobs/index.html", jobs=list(jobs))


@bp.get("/<job_id>")
@any_signed_in
def show(job_id: str):
    job = get_scoped(Job, job_id[:36], current_user.tenant_id)
    if job is None or (current_user.role != "admin" and job.user_id != current_user.id):
        abort(404)
    response = render_page("jobs/show.html", block="progress", job=job)
    if job.is_done and htmx and not htmx.boosted:
        response.status_code = STOP_POLLING
    return response
