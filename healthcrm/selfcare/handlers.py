"""What self-service events set off (staff tasks, the patient's notifications), and what the portal's
timeline and dashboard read from self-service. Imported at app start (MODULES_THAT_REGISTER)."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select

from ..accounts.models import User
from ..care.services import open_task
from ..extensions import db
from ..patients.models import Patient
from ..permissions import roles_for
from ..portal import events
from ..portal.feed import Attention, Cursor, TimelineItem, attention_source, timeline_source
from ..portal.models import PortalEvent
from ..portal.notifications import notify
from ..records.models import Prescription
from ..tenancy import get_scoped
from .care_plans import unacknowledged_version
from .models import PENDING, REFILL_STATUSES, CarePlanVersion, RefillRequest
from .refills import TASK_KIND as REFILL_TASK_KIND

# Paths, not url_for: handlers run in jobs, without a request to build URLs from.
PORTAL_REFILLS = "/portal/refills"
PORTAL_CARE_PLAN = "/portal/care-plan"
STAFF_REFILLS = "/care/refills"


def staff_care_plan(patient_id: int) -> str:
    return f"/care/patients/{patient_id}/self-care#care-plan"


def _portal_user_id(event: PortalEvent) -> int | None:
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    user = patient.portal_user if patient is not None else None
    return user.id if user is not None and user.active else None


@events.handles("refill.requested")
def _refill_task(event: PortalEvent) -> None:
    request = get_scoped(RefillRequest, event.subject_id, event.tenant_id)
    if request is None or request.status != PENDING:
        return  # decided before this event was handled: nothing is left to do
    open_task(
        event,
        REFILL_TASK_KIND,
        "Refill request",
        link=f"{STAFF_REFILLS}#refill-{event.subject_id}",
        pool_roles=sorted(roles_for("care.refills")),
        pool_name="Refills",
    )


@events.handles("refill.decided")
def _refill_answer(event: PortalEvent) -> None:
    user_id = _portal_user_id(event)
    if user_id is not None:
        notify(event, user_id, "refill", "Your refill request has an answer.", PORTAL_REFILLS)


@events.handles("care_plan.published")
def _care_plan_notice(event: PortalEvent) -> None:
    user_id = _portal_user_id(event)
    if user_id is not None:
        notify(
            event,
            user_id,
            "care_plan",
            "Your care team has shared a care plan for you to read.",
            PORTAL_CARE_PLAN,
        )


@events.handles("care_plan.acknowledged")
def _care_plan_task(event: PortalEvent) -> None:
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    coach = get_scoped(User, patient.assigned_coach_id, event.tenant_id) if patient else None
    title = f"Care plan version {event.payload.get('number', '')} acknowledged".replace("  ", " ")
    link = staff_care_plan(event.patient_id)
    if coach is not None and coach.active:
        open_task(event, "care_plan", title, link=link, assignee_id=coach.id)
    else:
        open_task(
            event,
            "care_plan",
            title,
            link=link,
            pool_roles=sorted(roles_for("care.care_plans")),
            pool_name="Care plans",
        )


def _before(at_column, key_column, before: Cursor):
    if before is None:
        return True
    at, key = before
    return or_(at_column < at, and_(at_column == at, key_column < key))


@timeline_source("refill", "Refill requests")
def refill_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    rows = db.session.execute(
        select(RefillRequest.id, RefillRequest.requested_at, RefillRequest.status, Prescription.drug)
        .join(Prescription, Prescription.id == RefillRequest.prescription_id)
        .where(
            RefillRequest.tenant_id == tenant_id,
            Prescription.tenant_id == tenant_id,
            RefillRequest.patient_id == patient_id,
            _before(RefillRequest.requested_at, RefillRequest.id, before),
        )
        .order_by(RefillRequest.requested_at.desc(), RefillRequest.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineItem(
            "refill", at, key, f"Refill requested: {drug}", REFILL_STATUSES.get(status), PORTAL_REFILLS
        )
        for key, at, status, drug in rows
    ]


@timeline_source("care_plan", "Care plan")
def care_plan_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    rows = db.session.execute(
        select(CarePlanVersion.id, CarePlanVersion.created_at, CarePlanVersion.number)
        .where(
            CarePlanVersion.tenant_id == tenant_id,
            CarePlanVersion.patient_id == patient_id,
            _before(CarePlanVersion.created_at, CarePlanVersion.id, before),
        )
        .order_by(CarePlanVersion.created_at.desc(), CarePlanVersion.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineItem(
            "care_plan",
            at,
            key,
            "Your care plan" if number == 1 else f"Your care plan changed (version {number})",
            None,
            PORTAL_CARE_PLAN,
        )
        for key, at, number in rows
    ]


@attention_source
def self_care_attention(tenant_id: int, patient_id: int, user_id: int) -> list[Attention]:
    needs: list[Attention] = []
    if unacknowledged_version(tenant_id, patient_id, user_id) is not None:
        needs.append(Attention("A care plan to read", PORTAL_CARE_PLAN))
    answers = db.session.scalar(
        select(func.count())
        .select_from(RefillRequest)
        .where(
            RefillRequest.tenant_id == tenant_id,
            RefillRequest.patient_id == patient_id,
            RefillRequest.status != PENDING,
            RefillRequest.patient_seen_at.is_(None),
        )
    )
    if answers:
        text = "Answer to your refill request" if answers == 1 else f"Answers to {answers} refill requests"
        needs.append(Attention(text, PORTAL_REFILLS, answers))
    return needs


__all__ = ["care_plan_items", "refill_items", "self_care_attention"]
