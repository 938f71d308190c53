"""Tasks for clinic staff, made from portal events (one task of a kind per event)."""

from __future__ import annotations

from datetime import datetime

from ..counters import insert_unless_exists
from ..extensions import db
from ..portal.models import PortalEvent
from ..tenancy import scoped
from .models import OPEN, Task


def open_task(
    event: PortalEvent,
    kind: str,
    title: str,
    *,
    link: str | None = None,
    assignee_id: int | None = None,
    pool_roles: list[str] | None = None,
    pool_name: str | None = None,
    due_at: datetime | None = None,
) -> Task | None:
    """Make the task for `event` inside the handling transaction; a second call for the same event and kind
    adds nothing (the unique key on event and kind) and returns the task that exists."""
    values = {
        "tenant_id": event.tenant_id,
        "patient_id": event.patient_id,
        "event_id": event.id,
        "kind": kind,
        "title": title[:200],
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "link": link,
        "assignee_id": assignee_id,
        "pool_roles": pool_roles,
        "pool_name": pool_name,
        "status": OPEN,
        "due_at": due_at,
        "created_at": event.created_at,
    }
    insert_unless_exists(Task, values, ["event_id", "kind"])
    return db.session.scalar(
        scoped(Task, event.tenant_id).where(Task.event_id == event.id, Task.kind == kind)
    )
