"""A clinic's clinical settings: the units its vitals are typed and shown in, and how old a liver score's
input may be before the score says so. Admins change them (the permission that manages record templates)."""

from __future__ import annotations

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..extensions import db
from ..permissions import require
from .services import RecordError
from .units import UNIT_SYSTEMS

SCORE_INPUT_MAX_AGE_RANGE_DAYS = (1, 730)
RESULT_HOLD_MAX_DAYS_RANGE = (1, 365)


def set_clinical_settings(
    actor: Actor,
    unit_system: str,
    score_input_max_age_days: int | None,
    result_hold_max_days: int | None = None,
) -> Tenant:
    """Save the clinic's unit system, score input age and (when given) the longest hold of a result from
    the patient (audited with the names of what changed)."""
    require(actor, "record_template.manage")
    if unit_system not in UNIT_SYSTEMS:
        raise RecordError("Choose one of the listed unit systems.", "unit_system")
    low, high = SCORE_INPUT_MAX_AGE_RANGE_DAYS
    if score_input_max_age_days is None or not low <= score_input_max_age_days <= high:
        raise RecordError(f"Enter a number of days from {low} to {high}.", "score_input_max_age_days")
    if result_hold_max_days is not None:
        low, high = RESULT_HOLD_MAX_DAYS_RANGE
        if not low <= result_hold_max_days <= high:
            raise RecordError(f"Enter a number of days from {low} to {high}.", "result_hold_max_days")
    tenant = db.session.get(Tenant, actor.tenant_id)
    values = [("unit_system", unit_system), ("score_input_max_age_days", score_input_max_age_days)]
    if result_hold_max_days is not None:
        values.append(("result_hold_max_days", result_hold_max_days))
    changed = []
    for name, value in values:
        if getattr(tenant, name) != value:
            setattr(tenant, name, value)
            changed.append(name)
    if changed:
        record_event(
            actor,
            "clinic.clinical_settings_changed",
            resource_type="tenant",
            resource_id=tenant.id,
            changed_fields=changed,
        )
        db.session.commit()
    return tenant
