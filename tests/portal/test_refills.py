"""Refill requests: the patient asks for a current prescription; staff approve or deny once; the patient is
told; another patient's ids are 404 and change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.care.models import Task
from healthcrm.errors import Conflict, NotFound
from healthcrm.extensions import db
from healthcrm.portal.models import Notification
from healthcrm.selfcare import refills
from healthcrm.selfcare.clinic import SelfCareError
from healthcrm.selfcare.models import APPROVED, PENDING, RefillRequest
from healthcrm.selfcare.schedule import current_prescriptions, duration_days
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.portal.selfcare_data import make_clinic, sign_in


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_current_means_finalized_not_ended_and_latest_per_drug(app):
    clinic = make_clinic()
    ids = {c.id for c in current_prescriptions(clinic.tenant.id, clinic.patient.id, "UTC", _today(clinic))}
    assert ids == {clinic.daily.id, clinic.twice.id}  # the 7-day course 40 days ago has ended
    assert duration_days("2 weeks") == 14
    assert duration_days("until review") is None


def _today(clinic):
    from healthcrm.selfcare.clinic import today_for

    return today_for(clinic.tenant.id)


def test_a_patient_requests_a_refill_and_a_task_opens_for_the_refill_pool(app, client, drain_jobs):
    clinic = make_clinic()
    sign_in(client, clinic.user)
    page = client.get("/portal/refills")
    assert page.status_code == 200 and "Lisinopril" in page.text and "Amoxicillin" not in page.text
    response = client.post(
        "/portal/refills/new", data={"prescription_id": clinic.daily.id, "note": "Running low"}
    )
    assert response.status_code == 303
    request = db.session.scalar(select(RefillRequest).where(RefillRequest.tenant_id == clinic.tenant.id))
    assert request.status == PENDING and request.note == "Running low"
    drain_jobs()
    task = db.session.scalar(select(Task).where(Task.tenant_id == clinic.tenant.id))
    assert task.kind == "refill" and set(task.pool_roles) == {"admin", "doctor", "nurse"}
    assert _count(AuditEvent, AuditEvent.action == "refill.request") == 1
    # One open request per prescription.
    again = client.post("/portal/refills/new", data={"prescription_id": clinic.daily.id})
    assert again.status_code == 422 and "already asked" in again.text
    assert _count(RefillRequest) == 1
    # Deciding the request is what the task asked: it completes, audited, with the decision as its note.
    refills.decide_refill(clinic.actor(clinic.nurse), request.id, "approve", None)
    db.session.refresh(task)
    assert task.status == "done" and task.completed_by_id == clinic.nurse.id
    assert task.completion_note == "Approved."
    assert _count(AuditEvent, AuditEvent.action == "task.completed") == 1


def test_a_prescription_that_is_not_current_is_refused_and_another_patients_is_404(app, client):
    clinic = make_clinic()
    other = make_clinic("Other")
    sign_in(client, clinic.user)
    assert client.post("/portal/refills/new", data={"prescription_id": clinic.old.id}).status_code == 422
    assert client.post("/portal/refills/new", data={"prescription_id": other.daily.id}).status_code == 404
    assert _count(RefillRequest) == 0


def test_staff_approve_and_the_patient_is_told_without_health_information(app, client, drain_jobs):
    clinic = make_clinic()
    request = refills.request_refill(clinic.actor(), clinic.patient.id, clinic.daily.id, None)
    sign_in(client, clinic.nurse)
    queue = client.get("/care/refills")
    assert queue.status_code == 200 and "Lisinopril" in queue.text
    response = client.post(f"/care/refills/{request.id}/decide", data={"decision": "approve"})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(RefillRequest, request.id).status == APPROVED
    drain_jobs()
    notice = db.session.scalar(select(Notification).where(Notification.user_id == clinic.user.id))
    assert notice.kind == "refill" and "Lisinopril" not in notice.text


def test_a_denial_needs_a_reason(app, client):
    clinic = make_clinic()
    request = refills.request_refill(clinic.actor(), clinic.patient.id, clinic.daily.id, None)
    sign_in(client, clinic.doctor)
    response = client.post(f"/care/refills/{request.id}/decide", data={"decision": "deny", "reason": " "})
    assert response.status_code == 422 and "Say why" in response.text
    db.session.expire_all()
    assert db.session.get(RefillRequest, request.id).status == PENDING


def test_two_staff_deciding_at_once_make_one_decision(app, drain_jobs):
    clinic = make_clinic()
    request_id = refills.request_refill(clinic.actor(), clinic.patient.id, clinic.daily.id, None).id
    actors = [clinic.actor(clinic.nurse), clinic.actor(clinic.doctor)]
    decisions = [("approve", None), ("deny", "Needs a visit first")]

    def decide(i):
        return refills.decide_refill(actors[i], request_id, *decisions[i]).status

    outcomes = parallel(2, app, decide)
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    assert _count(AuditEvent, AuditEvent.action.in_(["refill.approve", "refill.deny"])) == 1
    drain_jobs()
    assert _count(Notification, Notification.kind == "refill") == 1


def test_two_requests_at_once_make_one(app):
    clinic = make_clinic()
    actor = clinic.actor()
    outcomes = parallel(
        2, app, lambda _i: refills.request_refill(actor, clinic.patient.id, clinic.daily.id, None).id
    )
    assert sum(isinstance(o, SelfCareError) for o in outcomes) == 1, outcomes
    assert _count(RefillRequest) == 1


def test_staff_of_another_clinic_get_404(app):
    clinic = make_clinic()
    other = make_clinic("Other")
    request = refills.request_refill(clinic.actor(), clinic.patient.id, clinic.daily.id, None)
    with pytest.raises(NotFound):
        refills.decide_refill(other.actor(other.nurse), request.id, "approve", None)
