"""The audit log viewer for clinic admins."""

from flask import Blueprint, Response, abort, current_app, request, stream_with_context
from flask_login import current_user
from sqlalchemy import func, select

from ..access import current_actor, requires
from ..accounts.models import Tenant
from ..accounts.roles import ALL_ROLES, ROLE_LABELS
from ..clock import clinic_day_end, clinic_day_start, utcnow
from ..extensions import db
from ..files.storage import get_storage
from ..jobs.models import FINISHED, Job
from ..jobs.queue import enqueue
from ..web import render_page
from . import csv_export as csv_export_module  # noqa: F401  (registers the job)
from .archive import months_in_range
from .checkpoints import verify_checkpoints
from .csv_export import KEPT_FOR
from .models import ArchivedEventCopy, AuditArchive, AuditEvent
from .search import OUTCOMES, AuditFilter, apply_filters, parse_filter
from .services import describe_events, record_event, verify_chain

bp = Blueprint("audit", __name__, url_prefix="/audit")
EXPORT, LOAD = "audit.export_csv", "audit.load_archives"
PAGE_SIZE = 50


def _zone(tenant_id: int) -> str | None:
    return db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))


def _archived_months(tenant_id: int, filters: AuditFilter, zone: str | None):
    starts = clinic_day_start(filters.date_from, zone) if filters.date_from else None
    ends = clinic_day_end(filters.date_to, zone) if filters.date_to else None
    return months_in_range(tenant_id, starts, ends)


def _page_of(model, tenant_id: int, filters: AuditFilter, zone: str | None, *conditions) -> list:
    query = apply_filters(
        select(model).where(model.tenant_id == tenant_id, *conditions), model, filters, zone=zone
    )
    if filters.before is not None:
        query = query.where(model.id < filters.before)
    return list(db.session.scalars(query.order_by(model.id.desc()).limit(PAGE_SIZE)))


@bp.get("")
@requires("audit.read")
def index():
    tenant_id = current_user.tenant_id
    filters = parse_filter(request.args)
    zone = _zone(tenant_id)
    events = _page_of(AuditEvent, tenant_id, filters, zone)
    archived = _archived_months(tenant_id, filters, zone)
    if archived.loaded:  # the loaded archived months are searched with the table, newest first
        loaded = [a.id for a in archived.loaded]
        copies = _page_of(
            ArchivedEventCopy, tenant_id, filters, zone, ArchivedEventCopy.archive_id.in_(loaded)
        )
        events = sorted(events + copies, key=lambda e: e.id, reverse=True)[:PAGE_SIZE]
    report = checkpoints = None
    if request.args.get("verify"):  # what `flask audit verify` checks, for this clinic
        report = verify_chain(tenant_id, all_chains=False)
        checkpoints = verify_checkpoints(tenant_id)
    return render_page(
        "audit/index.html",
        block="events",
        entries=describe_events(tenant_id, events),
        filters=filters,
        archived=archived,
        roles=[(r, ROLE_LABELS.get(r, r)) for r in ALL_ROLES] + [("system", "System")],
        outcomes=OUTCOMES,
        report=report,
        checkpoints=checkpoints,
        next_before=events[-1].id if len(events) == PAGE_SIZE else None,
    )


def _clinic_job(job_id: str, kind: str) -> Job:
    """The clinic's job of this kind, else 404 (another clinic's, or any other kind of job)."""
    job = db.session.scalar(
        select(Job).where(Job.tenant_id == current_user.tenant_id, Job.id == job_id, Job.kind == kind)
    )
    if job is None:
        abort(404)
    return job


def _job_fragment(job: Job, block: str, filters: AuditFilter | None = None):
    """A job's progress card (the export's or the archive load's): its block of the page, polled by htmx."""
    response = render_page(
        "audit/index.html", block=block, job=job, filters=filters or parse_filter({}), entries=[],
        archived=None, roles=[], outcomes=OUTCOMES, report=None, checkpoints=None, next_before=None,
    )  # fmt: skip
    if job.is_done and request.headers.get("HX-Request"):
        response.status_code = 286  # htmx stops polling
    return response


@bp.post("/archives/load")
@requires("audit.read")
def load_archived():
    """Load the archived months the filter covers, so the viewer searches them too (for 24 hours)."""
    tenant_id = current_user.tenant_id
    filters = parse_filter(request.form)
    waiting = _archived_months(tenant_id, filters, _zone(tenant_id)).waiting
    if not waiting:
        abort(404)
    record_event(current_actor(), "audit.archive_loaded", resource_type="audit_archive",
                 changed_fields=[a.month for a in waiting])  # fmt: skip
    db.session.commit()
    job_id = enqueue(
        "audit.load_archives",
        ",".join(str(a.id) for a in waiting),
        tenant_id=tenant_id,
        user_id=current_user.id,
        label=f"Loading {len(waiting)} archived months",
    )
    return _job_fragment(_clinic_job(job_id, LOAD), "archive_load", filters)


@bp.get("/archives/load/<job_id>")
@requires("audit.read")
def load_status(job_id: str):
    return _job_fragment(_clinic_job(job_id, LOAD), "archive_load", parse_filter(request.args))


@bp.get("/<int:event_id>")
@requires("audit.read")
def event(event_id: int):
    tenant_id = current_user.tenant_id
    found = db.session.scalar(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id == event_id)
    )
    archive = None
    if found is None:  # an archived event, loaded for a search
        found = db.session.scalar(
            select(ArchivedEventCopy).where(
                ArchivedEventCopy.tenant_id == tenant_id, ArchivedEventCopy.id == event_id
            )
        )
        if found is None:
            abort(404)
        archive = db.session.get(AuditArchive, found.archive_id)
    position = None if archive else db.session.scalar(
        select(func.count()).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id <= found.id)
    )  # fmt: skip
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
    return render_page(
        "audit/event.html", entry=entries[0], position=position, archive=archive, same_request=entries[1:]
    )


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
    return _job_fragment(_clinic_job(job_id, EXPORT), "export")


@bp.get("/export/<job_id>")
@requires("audit.read")
def export_status(job_id: str):
    return _job_fragment(_clinic_job(job_id, EXPORT), "export")


@bp.get("/export/<job_id>/download")
@requires("audit.read")
def export_download(job_id: str):
    job = _clinic_job(job_id, EXPORT)
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
