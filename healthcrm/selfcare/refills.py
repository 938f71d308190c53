"""Refill requests: the patient asks for more of a current prescription, with a note; staff approve or deny
(a denial needs a reason), once; the patient is told (events "refill.requested" and "refill.decided")."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import selectinload

from ..audit.services import Actor, record_event
from ..care.services import complete_tasks_about
from ..clock import utcnow
from ..errors import Conflict, NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..portal import events
from ..tenancy import get_scoped, scoped
from .clinic import SelfCareError, clinic_zone, patient_for, today_for
from .models import APPROVED, DENIED, PENDING, RefillRequest
from .schedule import CurrentPrescription, current_prescriptions, prescription_of_patient

NOTE_MAX_CHARS = 1000
REASON_MAX_CHARS = 1000
RECENTLY_DECIDED = 20  # decided requests shown under the staff queue
DECISIONS = {"approve": APPROVED, "deny": DENIED}
TASK_KIND = "refill"  # the staff task "review this refill request"


@dataclass
class PatientRefills:
    patient: Patient
    current: list[CurrentPrescription]
    requests: list[RefillRequest]

    def open_request_for(self, prescription_id: int) -> RefillRequest | None:
        return next((r for r in self.requests if r.prescription_id == prescription_id and r.is_pending), None)


def _requests_of(tenant_id: int, patient_id: int) -> list[RefillRequest]:
    return list(
        db.session.scalars(
            scoped(RefillRequest, tenant_id)
            .where(RefillRequest.patient_id == patient_id)
            .options(selectinload(RefillRequest.prescription))
            .order_by(RefillRequest.requested_at.desc(), RefillRequest.id.desc())
        )
    )


def patient_refills(actor: Actor, patient_id: int) -> PatientRefills:
    """The patient's current prescriptions and refill requests, audited; a patient reading their answers
    marks them seen (the dashboard stops pointing at them)."""
    patient = patient_for(actor, patient_id)
    tenant_id = actor.tenant_id
    current = current_prescriptions(tenant_id, patient.id, clinic_zone(tenant_id), today_for(tenant_id))
    if actor.role == "patient":
        db.session.execute(
            update(RefillRequest)
            .where(
                RefillRequest.tenant_id == tenant_id,
                RefillRequest.patient_id == patient.id,
                RefillRequest.status != PENDING,
                RefillRequest.patient_seen_at.is_(None),
            )
            .values(patient_seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    requests = _requests_of(tenant_id, patient.id)
    record_event(actor, "refill.list", resource_type="patient", resource_id=patient.id, patient_id=patient.id)
    db.session.commit()
    return PatientRefills(patient, current, requests)


def _insert_open_request(values: dict) -> int | None:
    """INSERT the request unless the prescription has an open one (the partial unique index decides, so two
    requests at once make one). Returns the new id, or None."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(RefillRequest.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["prescription_id"], index_where=text("status = 'pending'"))
        .returning(RefillRequest.__table__.c.id)
    )
    return db.session.scalar(statement)


def request_refill(
    actor: Actor, patient_id: int, prescription_id: int | None, note: str | None
) -> RefillRequest:
    """Ask for a refill of one of the patient's current prescriptions. Another patient's prescription is
    NotFound; one that is not current, or already asked for, is a SelfCareError."""
    patient = patient_for(actor, patient_id)
    tenant_id = actor.tenant_id
    if prescription_id is None:
        raise SelfCareError("Choose the medicine you need more of.", "prescription_id")
    prescription = prescription_of_patient(tenant_id, patient.id, prescription_id)
    if prescription is None:
        raise NotFound("prescription")
    current = {
        c.id
        for c in current_prescriptions(tenant_id, patient.id, clinic_zone(tenant_id), today_for(tenant_id))
    }
    if prescription.id not in current:
        raise SelfCareError(
            "This prescription is not current any more; send your care team a message instead.",
            "prescription_id",
        )
    note = (note or "").strip() or None
    if note and len(note) > NOTE_MAX_CHARS:
        raise SelfCareError(f"Keep the note under {NOTE_MAX_CHARS} characters.", "note")
    new_id = _insert_open_request(
        {
            "tenant_id": tenant_id,
            "patient_id": patient.id,
            "prescription_id": prescription.id,
            "note": note,
            "status": PENDING,
            "requested_by_id": actor.user_id,
            "requested_at": utcnow(),
        }
    )
    if new_id is None:
        db.session.rollback()
        raise SelfCareError(
            "You already asked for this one; the care team will answer soon.", "prescription_id"
        )
    record_event(
        actor, "refill.request", resource_type="refill_request", resource_id=new_id, patient_id=patient.id
    )
    events.raise_event(
        actor,
        "refill.requested",
        patient_id=patient.id,
        subject=("refill", new_id),
        prescription_id=prescription.id,
    )
    events.commit()
    return get_scoped(RefillRequest, new_id, tenant_id)


@dataclass
class RefillQueue:
    pending: list[RefillRequest]
    decided: list[RefillRequest]


def refill_queue(actor: Actor) -> RefillQueue:
    """The clinic's open requests (oldest first) and the latest decisions, audited as one read."""
    require(actor, "care.refills")
    base = scoped(RefillRequest, actor.tenant_id).options(
        selectinload(RefillRequest.prescription), selectinload(RefillRequest.patient)
    )
    pending = list(
        db.session.scalars(
            base.where(RefillRequest.status == PENDING).order_by(RefillRequest.requested_at, RefillRequest.id)
        )
    )
    decided = list(
        db.session.scalars(
            base.where(RefillRequest.status != PENDING)
            .order_by(RefillRequest.decided_at.desc(), RefillRequest.id.desc())
            .limit(RECENTLY_DECIDED)
        )
    )
    record_event(actor, "refill.queue", resource_type="refill_queue")
    db.session.commit()
    return RefillQueue(pending, decided)


def pending_count(tenant_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(RefillRequest)
            .where(RefillRequest.tenant_id == tenant_id, RefillRequest.status == PENDING)
        )
        or 0
    )


def decide_refill(actor: Actor, request_id: int, decision: str | None, reason: str | None) -> RefillRequest:
    """Approve or deny an open request, once: of two people deciding at once, one decides and the other gets
    a Conflict (the guarded UPDATE finds it decided)."""
    require(actor, "care.refills")
    status = DECISIONS.get(decision or "")
    if status is None:
        raise SelfCareError("Choose approve or deny.", "decision")
    reason = (reason or "").strip() or None
    if status == DENIED and not reason:
        raise SelfCareError("Say why the refill is not approved; the patient reads it.", "reason")
    if reason and len(reason) > REASON_MAX_CHARS:
        raise SelfCareError(f"Keep the reason under {REASON_MAX_CHARS} characters.", "reason")
    decided = db.session.execute(
        update(RefillRequest)
        .where(
            RefillRequest.id == request_id,
            RefillRequest.tenant_id == actor.tenant_id,
            RefillRequest.status == PENDING,
        )
        .values(status=status, decided_by_id=actor.user_id, decided_at=utcnow(), decision_reason=reason)
        .returning(RefillRequest.patient_id)
        .execution_options(synchronize_session=False)
    ).first()
    if decided is None:
        db.session.rollback()
        exists = db.session.scalar(
            scoped(RefillRequest, actor.tenant_id).where(RefillRequest.id == request_id)
        )
        if exists is None:
            raise NotFound("refill request")
        raise Conflict("Someone decided this request already; the queue shows their answer.")
    patient_id = decided[0]
    record_event(
        actor,
        "refill.approve" if status == APPROVED else "refill.deny",
        resource_type="refill_request",
        resource_id=request_id,
        patient_id=patient_id,
        changed_fields=["status", "decision_reason"] if reason else ["status"],
    )
    events.raise_event(
        actor, "refill.decided", patient_id=patient_id, subject=("refill", request_id), status=status
    )
    complete_tasks_about(
        actor, TASK_KIND, "refill", request_id, "Approved." if status == APPROVED else "Denied."
    )
    events.commit()
    return get_scoped(RefillRequest, request_id, actor.tenant_id)
