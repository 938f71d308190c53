"""What an attacker with database access does to the audit log, for the tests that must catch it."""

from __future__ import annotations

from sqlalchemy import select, text

from healthcrm.audit.models import AuditChainHead, AuditEvent
from healthcrm.extensions import db


def cut_tail(tenant_id: int, from_id: int) -> None:
    """What an attacker with database access does: drop the trigger, delete the newest rows and point the
    head row at the new last event, so that the chain alone verifies."""
    dialect = db.engine.dialect.name
    if dialect == "sqlite":
        db.session.execute(text("DROP TRIGGER audit_log_no_delete"))
    else:
        db.session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"))
    db.session.execute(text("DELETE FROM audit_log WHERE id >= :id"), {"id": from_id})
    if dialect == "postgresql":
        db.session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change"))
    last = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant_id).order_by(AuditEvent.id.desc()).limit(1)
    ).one()
    head = db.session.get(AuditChainHead, tenant_id)
    head.hash, head.last_event_id = last.hash, last.id
    head.events = db.session.scalar(select(db.func.count()).where(AuditEvent.tenant_id == tenant_id))
    db.session.commit()
