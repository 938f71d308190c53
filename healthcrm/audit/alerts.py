"""The nightly verification: the hash chains, the archives' boundaries and the signed checkpoints.

What it finds is kept as an `AuditIntegrityAlert` per clinic and finding (a unique row, so the same finding
is mailed once, not every night it stays), shown to the clinic's admins on the audit page until one
acknowledges it, and emailed to every active admin.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select, update

from ..accounts.models import ADMIN, Tenant, User
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..extensions import db
from ..mail.services import compose, deliver
from ..tenancy import scoped
from .checkpoints import clinic_ids, verify_checkpoints
from .models import AuditIntegrityAlert
from .services import Actor, record_event, verify_chain


def findings(tenant_id: int) -> list[tuple[str, int | None]]:
    """Everything wrong with one clinic's log: (description, first bad event id)."""
    found = []
    chain = verify_chain(tenant_id, all_chains=False)
    if not chain.intact:
        found.append(
            (f"Audit chain of clinic {tenant_id} broken at event {chain.broken_event_id}: {chain.reason}.",
             chain.broken_event_id)
        )  # fmt: skip
    for problem in verify_checkpoints(tenant_id).problems:
        found.append((problem.description[:500], problem.first_bad_event_id))
    return found


def nightly_verify() -> str:
    """Periodic (daily): verify every clinic; record and mail what is new."""
    new = 0
    for tenant_id in clinic_ids():
        for description, event_id in findings(tenant_id):
            values = {"tenant_id": tenant_id, "description": description, "first_bad_event_id": event_id}
            if insert_unless_exists(AuditIntegrityAlert, values, ["tenant_id", "description"]):
                new += 1
                db.session.commit()
                _mail_admins(tenant_id, description)
        db.session.commit()
    return f"{new} new findings"


def _mail_admins(tenant_id: int, description: str) -> None:
    clinic = db.session.get(Tenant, tenant_id)
    alert = db.session.scalar(
        select(AuditIntegrityAlert).where(
            AuditIntegrityAlert.tenant_id == tenant_id, AuditIntegrityAlert.description == description
        )
    )
    admins = db.session.scalars(scoped(User, tenant_id).where(User.role == ADMIN, User.active.is_(True)))
    url = f"{current_app.config['PUBLIC_URL']}/audit"
    for admin in admins:
        deliver(
            compose(
                admin.email,
                "audit_alert",
                tenant_id=tenant_id,
                user=admin,
                clinic=clinic,
                alert=alert,
                url=url,
            )
        )


def open_alerts(tenant_id: int) -> list[AuditIntegrityAlert]:
    query = (
        select(AuditIntegrityAlert)
        .where(AuditIntegrityAlert.tenant_id == tenant_id, AuditIntegrityAlert.acknowledged_at.is_(None))
        .order_by(AuditIntegrityAlert.id.desc())
    )
    return list(db.session.scalars(query))


def acknowledge(actor: Actor, alert_id: int) -> bool:
    """Mark the clinic's alert seen (once: a guarded UPDATE); audited. False when it is not theirs or done."""
    changed = db.session.execute(
        update(AuditIntegrityAlert)
        .where(
            AuditIntegrityAlert.id == alert_id,
            AuditIntegrityAlert.tenant_id == actor.tenant_id,
            AuditIntegrityAlert.acknowledged_at.is_(None),
        )
        .values(acknowledged_at=utcnow(), acknowledged_by_user_id=actor.user_id)
    ).rowcount
    if changed:
        record_event(actor, "audit.alert_acknowledged", resource_type="audit_alert", resource_id=alert_id)
    db.session.commit()
    return bool(changed)
