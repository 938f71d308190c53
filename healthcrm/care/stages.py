"""Care stages that move on the clinic's own rules: "when a patient's first message is answered and they are
onboarding, they are in active care". A handler of every portal event applies the enabled rules inside the
event's handling transaction (so an event handled twice moves nobody twice), and every move is audited
with the rule that made it and kept for the patient page's care stage history.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from ..audit.services import Actor, record_event
from ..counters import insert_unless_exists
from ..errors import DomainError, NotFound
from ..extensions import db
from ..patients.models import CARE_STAGES, Patient
from ..portal import events
from ..portal.models import PortalEvent
from ..tenancy import get_scoped, scoped
from .models import ANY_STAGE, CareStageMove, CareStageRule

# The events a rule can name, in the clinic's words. Other helpers' events may be named too (free text).
EVENT_KINDS = {
    "account.registered": "The patient registered in the portal",
    "message.sent": "The patient sent a message",
    "message.replied": "The care team answered a message",
    "refill.requested": "The patient asked for a refill",
    "document.uploaded": "The patient uploaded a document",
    "care_plan.acknowledged": "The patient acknowledged a care plan",
    "profile.change_requested": "The patient asked to change their details",
    "appointment.booked": "An appointment was booked for the patient",
    "appointment.rescheduled": "The patient's appointment was moved",
    "appointment.cancelled": "The patient's appointment was cancelled",
}
# A new clinic's rules: registered → onboarding; the first answered message, or the first appointment
# booked, → active care (the "engaged": active care is the stage that means it here).
DEFAULT_RULES = (
    ("account.registered", "new", "onboarding", False),
    ("message.replied", "new", "active", True),
    ("message.replied", "onboarding", "active", True),
    ("appointment.booked", "new", "active", True),
    ("appointment.booked", "onboarding", "active", True),
)
HISTORY_LIMIT = 20


class StageRuleError(DomainError):
    pass


def ensure_default_rules(tenant_id: int) -> None:
    """Give a clinic that has no rules yet the default ones (two callers at once add them once)."""
    if db.session.scalar(select(func.count()).where(CareStageRule.tenant_id == tenant_id)):
        return
    for kind, from_stage, to_stage, first in DEFAULT_RULES:
        insert_unless_exists(
            CareStageRule,
            {
                "tenant_id": tenant_id,
                "event_kind": kind,
                "from_stage": from_stage,
                "to_stage": to_stage,
                "first_time_only": first,
                "enabled": True,
            },
            ["tenant_id", "event_kind", "from_stage"],
        )


def clinic_rules(tenant_id: int) -> list[CareStageRule]:
    """The clinic's rules for the settings page (a clinic without any gets the defaults first)."""
    ensure_default_rules(tenant_id)
    db.session.commit()
    return stage_rules(tenant_id)


def stage_rules(tenant_id: int) -> list[CareStageRule]:
    return list(
        db.session.scalars(
            scoped(CareStageRule, tenant_id).order_by(CareStageRule.event_kind, CareStageRule.id)
        )
    )


def _is_first_of_kind(event: PortalEvent) -> bool:
    earlier = db.session.scalar(
        select(PortalEvent.id)
        .where(
            PortalEvent.tenant_id == event.tenant_id,
            PortalEvent.patient_id == event.patient_id,
            PortalEvent.kind == event.kind,
            PortalEvent.id < event.id,
        )
        .limit(1)
    )
    return earlier is None


def apply_stage_rules(event: PortalEvent) -> CareStageMove | None:
    """Move the event's patient by the first enabled rule that matches (their own stage before "any")."""
    ensure_default_rules(event.tenant_id)
    rules = list(
        db.session.scalars(
            scoped(CareStageRule, event.tenant_id).where(
                CareStageRule.event_kind == event.kind, CareStageRule.enabled.is_(True)
            )
        )
    )
    if not rules:
        return None
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    if patient is None:
        return None
    rules.sort(key=lambda rule: (rule.from_stage == ANY_STAGE, rule.id))
    first: bool | None = None
    for rule in rules:
        if rule.from_stage not in (ANY_STAGE, patient.care_stage) or rule.to_stage == patient.care_stage:
            continue
        if rule.first_time_only:
            first = _is_first_of_kind(event) if first is None else first
            if not first:
                continue
        return _move(event, patient, rule)
    return None


def _move(event: PortalEvent, patient: Patient, rule: CareStageRule) -> CareStageMove | None:
    before = patient.care_stage
    # Guarded on the stage read above: a staff edit in between wins, and the rule does nothing.
    moved = db.session.execute(
        update(Patient)
        .where(Patient.id == patient.id, Patient.tenant_id == event.tenant_id, Patient.care_stage == before)
        .values(care_stage=rule.to_stage)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        return None
    db.session.expire(patient)
    move = CareStageMove(
        tenant_id=event.tenant_id,
        patient_id=patient.id,
        from_stage=before,
        to_stage=rule.to_stage,
        rule_id=rule.id,
        event_id=event.id,
    )
    db.session.add(move)
    db.session.flush()
    record_event(
        Actor.system(event.tenant_id),
        "patient.care_stage_moved",
        resource_type="care_stage_rule",
        resource_id=rule.id,
        patient_id=patient.id,
        changed_fields=["care_stage"],
    )
    return move


@events.handles(events.EVERY_KIND)
def _stage_rules_handler(event: PortalEvent) -> None:
    apply_stage_rules(event)


def stage_history(tenant_id: int, patient_id: int) -> list[CareStageMove]:
    return list(
        db.session.scalars(
            scoped(CareStageMove, tenant_id)
            .where(CareStageMove.patient_id == patient_id)
            .order_by(CareStageMove.moved_at.desc(), CareStageMove.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )


def describe_rule(rule: CareStageRule) -> str:
    when = EVENT_KINDS.get(rule.event_kind, rule.event_kind)
    if rule.first_time_only:
        when += " (the first time)"
    stage = "any stage" if rule.from_stage == ANY_STAGE else CARE_STAGES.get(rule.from_stage, rule.from_stage)
    return f"{when}, in {stage} → {CARE_STAGES.get(rule.to_stage, rule.to_stage)}"


# --- editing the rules (the settings page) ---------------------------------------------------------------


def _clean(values: dict[str, str]) -> dict:
    kind = (values.get("event_kind") or "").strip()
    if not kind or len(kind) > 60 or not all(ch.isalnum() or ch in "._" for ch in kind):
        raise StageRuleError("Choose the event (letters, dots and underscores).", "event_kind")
    from_stage = values.get("from_stage") or ANY_STAGE
    if from_stage != ANY_STAGE and from_stage not in CARE_STAGES:
        raise StageRuleError("Choose one of the listed stages.", "from_stage")
    to_stage = values.get("to_stage") or ""
    if to_stage not in CARE_STAGES:
        raise StageRuleError("Choose the stage to move to.", "to_stage")
    if to_stage == from_stage:
        raise StageRuleError("The stage to move to must differ from the stage the patient is in.", "to_stage")
    return {
        "event_kind": kind,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "first_time_only": values.get("first_time_only") in ("1", "on", "true", "y"),
    }


def _clash(tenant_id: int, cleaned: dict, rule_id: int | None) -> bool:
    statement = scoped(CareStageRule, tenant_id).where(
        CareStageRule.event_kind == cleaned["event_kind"], CareStageRule.from_stage == cleaned["from_stage"]
    )
    if rule_id is not None:
        statement = statement.where(CareStageRule.id != rule_id)
    return db.session.scalar(statement.limit(1)) is not None


def save_rule(actor: Actor, values: dict[str, str], rule_id: int | None = None) -> CareStageRule:
    """Add a rule, or change one (`rule_id`); one rule per event and stage."""
    cleaned = _clean(values)
    if _clash(actor.tenant_id, cleaned, rule_id):
        raise StageRuleError("A rule for this event and stage exists already: edit that one.", "event_kind")
    if rule_id is None:
        ensure_default_rules(actor.tenant_id)
        rule = CareStageRule(tenant_id=actor.tenant_id, enabled=True, **cleaned)
        db.session.add(rule)
        action = "care.stage_rule_created"
    else:
        rule = get_scoped(CareStageRule, rule_id, actor.tenant_id)
        if rule is None:
            raise NotFound()
        for name, value in cleaned.items():
            setattr(rule, name, value)
        action = "care.stage_rule_changed"
    db.session.flush()
    record_event(actor, action, resource_type="care_stage_rule", resource_id=rule.id, changed_fields=cleaned)
    db.session.commit()
    return rule


def set_rule_enabled(actor: Actor, rule_id: int, enabled: bool) -> CareStageRule:
    rule = get_scoped(CareStageRule, rule_id, actor.tenant_id)
    if rule is None:
        raise NotFound()
    rule.enabled = enabled
    record_event(
        actor,
        "care.stage_rule_enabled" if enabled else "care.stage_rule_disabled",
        resource_type="care_stage_rule",
        resource_id=rule.id,
        changed_fields=["enabled"],
    )
    db.session.commit()
    return rule
