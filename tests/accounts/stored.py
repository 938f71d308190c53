"""What the database holds: audit events, and whether a secret was stored anywhere in the clear."""

from __future__ import annotations

from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db


def audit_events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(db.session.scalars(query))


def database_contains(value: str) -> bool:
    """Whether `value` appears anywhere in any row of any table (what a database dump would show)."""
    db.session.expire_all()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            if any(value in str(cell) for cell in row if cell is not None):
                return True
    return False
