"""The audit log viewer for clinic admins."""

from flask import Blueprint, Response, abort, current_app, request, stream_with_context
from flask_login import current_user
from sqlalchemy import func, select

from ..access import current_actor, requires
from ..accounts.models import Tenant
from ..accounts.roles import ALL_ROLES, ROLE_LABELS
from ..clock import utcnow
from ..extensions import db
from ..files.storage import get_storage
from ..jobs.models import FINISHED, Job
from ..jobs.queue import enqueue
from ..web import render_page
from . import csv_export as csv_export_module  # noqa: F401  (registers the job)
from .csv_export import KEPT_FOR
from .models import AuditEvent
from .search import OUTCOMES, apply_filters, parse_filter
from .services import describe_events, record_event, verify_chain

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50


def _zone(tenant_id: int) -> str | None:
    return db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))


@bp.get("")
@requires("audit.read")
def index():
    tenant_id = current_user.tenant_id
    filters = parse_filter(request.args)
    query = apply_filters(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant_id),
        AuditEvent,
        filters,
        zone=_zone(tenant_id),
    )
    if filters.before is not None:
        query = query.where(AuditEvent.id < filters.before)
    events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE)))
    report = verify_chain(tenant_id, all_chains=False) if request.args.get("verify") else None
    return render_page(
        "audit/index.html",
        block="events",
        entries=describe_events(tenant_id, events),
        filters=filters,
        roles=[(r, ROLE_LABELS.get(r, r)) for r in ALL_ROLES] + [("system", "System")],
        outcomes=OUTCOMES,
        report=report,
        next_before=events[-1].id if len(events) == PAGE_SIZE else None,
    )


@bp.get("/<int:event_id>")
@requires("audit.read")
def event(event_id: int):
    tenant_id = current_user.tenant_id
    found = db.session.scalar(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id == event_id)
    )
    if found is None:
        abort(404)
    position = db.session.scalar(
        select(func.count()).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id <= found.id)
    )
    same_request = []
    if found.request_id:
        same_request = list(
            db.session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == tenant_id,
                    AuditEvent.request_id == found.request_id,
                    AuditEvent.id != found.id,
                )
                .order_by(AuditEvent.id)
                .limit(200)
            )
        )
    entries = describe_events(tenant_id, [found, *same_request])
    return render_page("audit/event.html", entry=entries[0], position=position, same_request=entries[1:])


def _export_job(job_id: str) -> Job:
    """The clinic's audit export job, else 404 (another clinic's, or any other kind of job)."""
    job = db.session.scalar(
        select(Job).where(
            Job.tenant_id == current_user.tenant_id, Job.id == job_id, Job.kind == "audit.export_csv"
        )
    )
    if job is None:
        abort(404)
    return job


def _export_fragment(job: Job):
    response = render_page(
        "audit/index.html",
        block="export",
        job=job,
        entries=[],
        filters=parse_filter({}),
        roles=[],
        outcomes=OUTCOMES,
        report=None,
        next_before=None,
    )
    if job.is_done and request.headers.get("HX-Request"):
        response.status_code = 286  # htmx stops polling
    return response


@bp.post("/export")
@requires("audit.read")
def export():
    filters = parse_filter(request.form)
    record_event(
        current_actor(), "audit.export", resource_type="audit_log", changed_fields=sorted(filters.args())
    )
    db.session.commit()
    job_id = enqueue(
        "audit.export_csv",
        filters.query_string(before=None),
        tenant_id=current_user.tenant_id,
        user_id=current_user.id,
        label="Audit log export (CSV)",
    )
    return _export_fragment(_export_job(job_id))


@bp.get("/export/<job_id>")
@requires("audit.read")
def export_status(job_id: str):
    return _export_fragment(_export_job(job_id))


@bp.get("/export/<job_id>/download")
@requires("audit.read")
def export_download(job_id: str):
    job = _export_job(job_id)
    if job.status != FINISHED or not (job.result or {}).get("key"):
        abort(404)
    if job.finished_at is None or utcnow() - job.finished_at > KEPT_FOR or job.result.get("deleted"):
        return Response(
            "This export is older than 24 hours and is no longer kept. "
            "Start a new export from the audit log.",
            status=410,
            mimetype="text/plain",
        )
    stream = get_storage(current_app).open_stream(job.result["key"])

    def chunks():
        with stream:
            while chunk := stream.read(64 * 1024):
                yield chunk

    stamp = job.finished_at.strftime("%Y%m%d-%H%M%S")
    return Response(
        stream_with_context(chunks()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-log-{stamp}.csv"'},
    )
