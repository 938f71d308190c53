"""Job functions of restores, the class refresh and the sweeper. Thin: load by id, call the service."""

from __future__ import annotations

from sqlalchemy import select

from ..accounts.models import Tenant
from ..extensions import db
from ..jobs.queue import enqueue, task
from ..tenant_scope import ALL_TENANTS
from . import classes, restores, sweeper

CLASSES_JOB = "storage.classes"


@task(restores.RESTORE_JOB)
def restore(restore_id: int, *, progress) -> dict:
    """Ask the store for a restore's copy (asking twice is harmless)."""
    return {"status": restores.start_restore(restore_id, progress.tenant_id)}


@task(restores.EMAIL_JOB)
def restore_email(restore_id: int, *, progress) -> dict:
    """Email the person who asked that their restored file is ready (once)."""
    return {"sent": restores.email_ready(restore_id, progress.tenant_id)}


@task(CLASSES_JOB)
def refresh_classes(*, progress) -> dict:
    """Correct the clinic's versions' storage classes from a listing of its objects."""
    found = classes.refresh_classes(progress.tenant_id)
    return {"objects": found.objects, "changed": found.changed, "restores_closed": found.restores_closed}


@task(sweeper.SWEEP_JOB)
def sweep(*, progress) -> dict:
    """Abort the clinic's untracked old uploads and report orphan and missing objects."""
    found = sweeper.sweep_clinic(progress.tenant_id)
    return {
        "sweep_id": found.id,
        "aborted": found.aborted_uploads,
        "orphans": found.orphans,
        "missing": found.missing,
    }


def refresh_all_classes() -> str:
    """Periodic (daily): a `storage.classes` job for each clinic (run inline without Redis)."""
    clinics = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS)))
    for tenant_id in clinics:
        enqueue(CLASSES_JOB, tenant_id=tenant_id, label="Storage classes")
    return f"{len(clinics)} storage class refreshes queued"
