"""How long the clinic keeps its audit log, its share access log and its records, with the legal floors
(one place for them: `models`), and the share access log's deletion past its retention.

Records are never deleted by the app on its own: the record rule is kept here for the report and the
purge an admin confirms (not built yet; see the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import delete, func, select

from ..accounts.models import Tenant
from ..clock import add_years, utcnow
from ..errors import DomainError
from ..extensions import db
from ..permissions import require
from ..sharing.models import ShareEvent
from ..tenant_scope import ALL_TENANTS
from .models import (
    AUDIT_YEARS_MIN,
    HOT_MONTHS_MIN,
    RECORD_ADULT_YEARS_MIN,
    RECORD_MINOR_UNTIL_AGE_MIN,
    SHARE_LOG_YEARS_MIN,
    RetentionSettings,
)
from .services import Actor, record_event, retention_settings


@dataclass(frozen=True)
class Rule:
    field: str
    label: str
    minimum: int
    maximum: int
    why: str


RULES = [
    Rule("audit_years", "Keep the audit log (years)", AUDIT_YEARS_MIN, 50,
         "Audit records must be kept at least 6 years (HIPAA 45 CFR 164.316(b)(2))."),
    Rule("share_log_years", "Keep the share access log (years)", SHARE_LOG_YEARS_MIN, 50,
         "Disclosures must stay accountable for 6 years (HIPAA 45 CFR 164.528)."),
    Rule("hot_months", "Months of audit log kept in the main table", HOT_MONTHS_MIN, 120,
         "At least 3 months stay in the main table."),
    Rule("record_adult_years", "Keep an adult's records after the last visit (years)",
         RECORD_ADULT_YEARS_MIN, 100, "Adults' records are kept at least 6 years after the last visit."),
    Rule("record_minor_until_age", "Keep a minor's records at least until age",
         RECORD_MINOR_UNTIL_AGE_MIN, 120, "Minors' records are kept at least until age 21."),
]  # fmt: skip


def save_settings(actor: Actor, form: dict[str, str]) -> RetentionSettings:
    """Check every value against its floor (DomainError naming the field, nothing saved), then save."""
    require(actor, "audit.retention")
    values = {}
    for rule in RULES:
        raw = (form.get(rule.field) or "").strip()
        if not raw.isdigit() or len(raw) > 3:
            raise DomainError(f"{rule.label}: enter a whole number.", rule.field)
        value = int(raw)
        if value < rule.minimum:
            raise DomainError(rule.why, rule.field)
        if value > rule.maximum:
            raise DomainError(f"{rule.label}: at most {rule.maximum}.", rule.field)
        values[rule.field] = value
    row = retention_settings(actor.tenant_id)
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by_user_id = utcnow(), actor.user_id
    db.session.add(row)
    record_event(actor, "retention.settings_changed", resource_type="tenant", resource_id=actor.tenant_id,
                 changed_fields=changed)  # fmt: skip
    db.session.commit()
    return row


def delete_expired_share_log() -> int:
    """Periodic (daily): delete share access log rows older than each clinic's share-log retention; the
    deletion is recorded in the clinic's audit chain with the count (the audit log keeps its own copy of
    every access for its own, longer or equal, retention)."""
    deleted = 0
    for tenant_id in db.session.scalars(select(Tenant.id).execution_options(**ALL_TENANTS)):
        years = retention_settings(tenant_id).share_log_years
        cutoff = datetime.combine(add_years(utcnow().date(), -years), time())
        old = (ShareEvent.tenant_id == tenant_id, ShareEvent.occurred_at < cutoff)
        count = db.session.scalar(select(func.count()).select_from(ShareEvent).where(*old)) or 0
        if count:
            db.session.execute(delete(ShareEvent).where(*old).execution_options(synchronize_session=False))
            record_event(
                Actor.system(tenant_id), "share_log.retention_deleted", resource_type="share_log",
                resource_id=cutoff.date().isoformat(), changed_fields=[f"rows_{count}"],
            )  # fmt: skip
            deleted += count
        db.session.commit()
    return deleted
