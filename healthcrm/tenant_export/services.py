"""Clinic exports as admins see them: start one (a job), watch it, download it for 24 hours by the link
the finished job emails; the ZIP is deleted after that. A scheduled export (`schedule.py`) is the same job,
started by the system, and its link goes to every admin."""

from __future__ import annotations

import tempfile
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..accounts.models import ADMIN, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..errors import NotFound
from ..extensions import db
from ..files.storage import get_storage, validate_key
from ..jobs.models import FINISHED, Job
from ..jobs.queue import enqueue, task
from ..mail.services import compose, deliver
from ..permissions import require
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .archive import EXPORTS_FOLDER, build_archive
from .models import ExportSchedule

KIND = "tenant_export.build"
KEPT_FOR = timedelta(hours=24)


class ExportGone(Exception):
    """The export's 24 hours are over."""


def start_export(actor: Actor) -> str:
    require(actor, "clinic.export")
    record_event(actor, "clinic.export", resource_type="tenant", resource_id=actor.tenant_id)
    db.session.commit()
    return enqueue(
        KIND, tenant_id=actor.tenant_id, user_id=actor.user_id, label="Export of all the clinic's data"
    )


def start_scheduled_export(tenant_id: int, schedule_id: int, job_id: str) -> str:
    """Start the export of a schedule's slot as the system, audited. The caller's claim of the slot is still
    pending: it commits with the event and the job row (`enqueue` commits them before queueing)."""
    record_event(Actor.system(tenant_id), "tenant_export.scheduled_start", resource_type="clinic_export",
                 resource_id=job_id)  # fmt: skip
    return enqueue(
        KIND,
        schedule_id,
        tenant_id=tenant_id,
        label="Scheduled export of all the clinic's data",
        job_id=job_id,
    )


def clinic_admins(tenant_id: int) -> list[User]:
    """The clinic's active admins (who get a scheduled export's link, and hear when one failed)."""
    query = scoped(User, tenant_id).where(User.role == ADMIN, User.active.is_(True)).order_by(User.id)
    return list(db.session.scalars(query))


@task(KIND)
def build(schedule_id: int | None = None, *, progress) -> dict:
    """Build the archive, store it and email its link: to the admin who started it, or to every admin for a
    scheduled export (`schedule_id`, the clinic's ExportSchedule)."""
    tenant_id = progress.tenant_id
    key = validate_key(f"{tenant_id}/{EXPORTS_FOLDER}{uuid.uuid4().hex}.zip")
    with tempfile.TemporaryFile() as spool:
        built = build_archive(tenant_id, spool, lambda p: progress(min(95, p)))
        size = spool.tell()
        spool.seek(0)
        get_storage(current_app).put_stream(key, spool, "application/zip")
    result = {"made": True, "key": key, "rows": sum(built.rows.values()), "files": built.files, "size": size}
    _email_link(progress.job, result, schedule_id)
    return result


def _email_link(job: Job, result: dict, schedule_id: int | None) -> None:
    scheduled = None
    if schedule_id is not None:
        schedule = get_scoped(ExportSchedule, schedule_id, job.tenant_id)
        scheduled = schedule.describe if schedule is not None else "scheduled"
        recipients = clinic_admins(job.tenant_id)
    else:
        admin = get_scoped(User, job.user_id, job.tenant_id) if job.user_id else None
        recipients = [admin] if admin is not None else []
    clinic = db.session.get(Tenant, job.tenant_id)
    url = f"{current_app.config['PUBLIC_URL']}/admin/export/{job.id}/download"
    for admin in recipients:
        deliver(
            compose(
                admin.email, "clinic_export_ready", tenant_id=job.tenant_id, user=admin, clinic=clinic,
                url=url, hours=int(KEPT_FOR.total_seconds() // 3600), result=result, scheduled=scheduled,
            )
        )  # fmt: skip


def recent_exports(actor: Actor) -> list[Job]:
    require(actor, "clinic.export")
    query = scoped(Job, actor.tenant_id).where(Job.kind == KIND).order_by(Job.created_at.desc()).limit(10)
    return list(db.session.scalars(query))


def export_job(actor: Actor, job_id: str) -> Job:
    require(actor, "clinic.export")
    job = db.session.scalar(scoped(Job, actor.tenant_id).where(Job.id == job_id[:36], Job.kind == KIND))
    if job is None:
        raise NotFound(job_id)
    return job


def is_downloadable(job: Job) -> bool:
    result = job.result or {}
    return (
        job.status == FINISHED
        and bool(result.get("made"))
        and not result.get("deleted")
        and job.finished_at >= utcnow() - KEPT_FOR
    )


def download(actor: Actor, job_id: str) -> tuple[str, str]:
    """(key, file name) of a finished export, audited; ExportGone after 24 hours."""
    job = export_job(actor, job_id)
    if job.status != FINISHED or not (job.result or {}).get("made"):
        raise NotFound(job_id)
    if not is_downloadable(job):
        raise ExportGone(job_id)
    record_event(actor, "clinic.export_download", resource_type="clinic_export", resource_id=job.id)
    db.session.commit()
    return job.result["key"], f"clinic-export-{job.finished_at:%Y%m%d-%H%M}.zip"


def delete_old_exports() -> int:
    """Periodic: delete the archives of exports finished more than 24 hours ago."""
    storage = get_storage(current_app)
    old = db.session.scalars(
        select(Job)
        .where(Job.kind == KIND, Job.status == FINISHED, Job.finished_at < utcnow() - KEPT_FOR)
        .execution_options(**ALL_TENANTS)  # periodic, for every clinic
    )
    deleted = 0
    for job in old:
        result = dict(job.result or {})
        if result.get("key") and not result.get("deleted"):
            storage.delete(result["key"])
            job.result = {**result, "deleted": True}
            deleted += 1
    db.session.commit()
    return deleted
