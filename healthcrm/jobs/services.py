"""Which jobs a person may see: admins the whole clinic's, everyone else the jobs they started."""

from __future__ import annotations

from sqlalchemy import Select

from ..accounts.models import ADMIN
from ..extensions import db
from ..tenancy import scoped
from .models import Job

LIST_LIMIT = 50


def _visible(tenant_id: int, user_id: int, role: str) -> Select:
    query = scoped(Job, tenant_id)
    if role != ADMIN:
        query = query.where(Job.user_id == user_id)
    return query


def recent_jobs(tenant_id: int, user_id: int, role: str) -> list[Job]:
    query = _visible(tenant_id, user_id, role).order_by(Job.created_at.desc()).limit(LIST_LIMIT)
    return list(db.session.scalars(query))


def visible_job(tenant_id: int, user_id: int, role: str, job_id: str) -> Job | None:
    """The job, or None when it is another clinic's or (for non-admins) another person's."""
    return db.session.scalar(_visible(tenant_id, user_id, role).where(Job.id == job_id[:36]))
