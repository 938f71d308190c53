"""Identity change requests: the patient asks, one pending at a time; a task opens for the pool that
decides; staff approve (the new values go onto the patient) or reject with a note, once; the patient is
told and the task completes."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.care.models import DONE, Task
from healthcrm.errors import Conflict, NotAllowed
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.portal.models import Notification
from healthcrm.portal.profile import services
from healthcrm.portal.profile.models import APPROVED, PENDING, REJECTED, WITHDRAWN, ProfileChangeRequest
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.factories import make_patient, make_portal_user, make_tenant, make_user
from tests.portal.selfcare_data import sign_in

NEW_NAME = {"first_name": "Patricia", "last_name": "Jones", "date_of_birth": "1970-01-01", "sex": "female"}


class Desk:
    def __init__(self):
        self.tenant = make_tenant("Change Clinic")
        self.front_desk = make_user(self.tenant, "front_desk")
        self.nurse = make_user(self.tenant, "nurse")
        self.coach = make_user(self.tenant, "coach")
        self.patient = make_patient(self.tenant, assigned_coach_id=self.coach.id)
        self.user = make_portal_user(self.patient)

    def actor(self, user=None) -> Actor:
        user = user or self.user
        return Actor(tenant_id=self.tenant.id, user_id=user.id, role=user.role)

    def ask(self, **values) -> int:
        return services.request_change(self.actor(), self.patient.id, {**NEW_NAME, **values}, "Married").id


@pytest.fixture
def desk(app) -> Desk:
    return Desk()


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _request(request_id: int) -> ProfileChangeRequest:
    db.session.expire_all()
    return db.session.get(ProfileChangeRequest, request_id)


def test_the_patient_asks_and_a_task_opens_for_the_deciders(desk, client, drain_jobs):
    sign_in(client, desk.user)
    response = client.post("/portal/profile/change-request", data={**NEW_NAME, "reason": "Married"})
    assert response.status_code == 303
    request = db.session.scalar(select(ProfileChangeRequest))
    assert request.status == PENDING and request.reason == "Married"
    assert request.changes == {
        "first_name": {"from": "Pat", "to": "Patricia"},
        "last_name": {"from": desk.patient.last_name, "to": "Jones"},
    }
    page = client.get("/portal/profile")
    assert "waiting for the clinic" in page.text and "Patricia" in page.text
    assert db.session.get(Patient, desk.patient.id).first_name == "Pat"  # nothing changes yet
    drain_jobs()
    task = db.session.scalar(select(Task).where(Task.tenant_id == desk.tenant.id))
    assert task.kind == "profile_change" and task.subject_id == request.id
    assert task.link == f"/care/change-requests#change-{request.id}"
    assert set(task.pool_roles) == {"admin", "doctor", "nurse", "front_desk"} and task.assignee_id is None


def test_one_pending_request_at_a_time_and_withdraw(desk, client):
    sign_in(client, desk.user)
    first = desk.ask()
    again = client.post("/portal/profile/change-request", data={**NEW_NAME, "last_name": "Smith"})
    assert again.status_code == 422 and "already have a change waiting" in again.text
    assert _count(ProfileChangeRequest) == 1
    withdrawn = client.post(f"/portal/profile/change-request/{first}/withdraw", data={})
    assert withdrawn.status_code == 303 and _request(first).status == WITHDRAWN
    assert client.post("/portal/profile/change-request", data=NEW_NAME).status_code == 303
    assert _count(ProfileChangeRequest, ProfileChangeRequest.status == PENDING) == 1


def test_identity_input_is_checked_and_another_patients_request_is_404(desk, client):
    other = make_patient(desk.tenant)
    other_request = services.request_change(
        Actor(tenant_id=desk.tenant.id, user_id=make_portal_user(other).id, role="patient"),
        other.id,
        NEW_NAME,
        None,
    ).id
    sign_in(client, desk.user)
    for data, message in [
        ({**NEW_NAME, "first_name": " "}, "Enter a first name"),
        ({**NEW_NAME, "date_of_birth": "2999-01-01"}, "in the past"),
        ({**NEW_NAME, "sex": "robot"}, "listed options"),
        ({**NEW_NAME, "first_name": "Pat", "last_name": desk.patient.last_name}, "Change at least one"),
    ]:
        response = client.post("/portal/profile/change-request", data=data)
        assert response.status_code == 422 and message in response.text, data
    assert client.post(f"/portal/profile/change-request/{other_request}/withdraw", data={}).status_code == 404
    assert _request(other_request).status == PENDING
    assert _count(ProfileChangeRequest) == 1


def test_approve_applies_the_values_notifies_and_completes_the_task(desk, client, drain_jobs):
    request_id = desk.ask(date_of_birth="1971-02-03")
    drain_jobs()
    sign_in(client, desk.front_desk)
    queue = client.get("/care/change-requests")
    assert queue.status_code == 200 and "Patricia" in queue.text and "1971-02-03" in queue.text
    response = client.post(f"/care/change-requests/{request_id}/decide", data={"decision": "approve"})
    assert response.status_code == 303
    db.session.expire_all()
    patient = db.session.get(Patient, desk.patient.id)
    assert (patient.first_name, patient.last_name, patient.date_of_birth) == (
        "Patricia",
        "Jones",
        date(1971, 2, 3),
    )
    request = _request(request_id)
    assert request.status == APPROVED and request.decided_by_id == desk.front_desk.id
    assert _count(AuditEvent, AuditEvent.action == "profile.change_approve") == 1
    assert _count(AuditEvent, AuditEvent.action == "patient.update", AuditEvent.patient_id == patient.id) == 1
    task = db.session.scalar(select(Task).where(Task.kind == "profile_change"))
    assert task.status == DONE and task.completed_by_id == desk.front_desk.id
    drain_jobs()
    notice = db.session.scalar(select(Notification).where(Notification.user_id == desk.user.id))
    assert notice.kind == "profile" and notice.link == "/portal/profile" and "Jones" not in notice.text


def test_reject_needs_a_note_and_changes_nothing_on_the_patient(desk, client, drain_jobs):
    request_id = desk.ask()
    sign_in(client, desk.nurse)
    refused = client.post(
        f"/care/change-requests/{request_id}/decide", data={"decision": "reject", "note": ""}
    )
    assert refused.status_code == 422 and "Say why" in refused.text
    assert _request(request_id).status == PENDING
    rejected = client.post(
        f"/care/change-requests/{request_id}/decide",
        data={"decision": "reject", "note": "Bring your marriage certificate"},
    )
    assert rejected.status_code == 303
    assert _request(request_id).status == REJECTED
    assert db.session.get(Patient, desk.patient.id).first_name == "Pat"
    again = client.post(f"/care/change-requests/{request_id}/decide", data={"decision": "approve"})
    assert again.status_code == 409 and "decided this request already" in again.text
    drain_jobs()
    assert _count(Notification, Notification.user_id == desk.user.id, Notification.kind == "profile") == 1
    client.post("/logout", data={})
    sign_in(client, desk.user)
    assert "Bring your marriage certificate" in client.get("/portal/profile").text


def test_coaches_and_patients_cannot_decide(desk, client):
    request_id = desk.ask()
    with pytest.raises(NotAllowed):
        services.decide_change(desk.actor(desk.coach), request_id, "approve", None)
    sign_in(client, desk.user)
    assert client.post(
        f"/care/change-requests/{request_id}/decide", data={"decision": "approve"}
    ).status_code in (
        403,
        404,
    )
    assert _request(request_id).status == PENDING


def test_six_staff_deciding_at_once_make_one_decision(desk, app, drain_jobs):
    request_id = desk.ask()
    drain_jobs()
    deciders = [make_user(desk.tenant, "nurse") for _ in range(6)]
    actors = [desk.actor(user) for user in deciders]

    def decide(i):
        decision = ("approve", None) if i % 2 == 0 else ("reject", "Needs a document")
        return services.decide_change(actors[i], request_id, *decision).status

    outcomes = parallel(6, app, decide)
    assert sum(isinstance(o, Conflict) for o in outcomes) == 5, outcomes
    assert _count(AuditEvent, AuditEvent.action.in_(["profile.change_approve", "profile.change_reject"])) == 1
    assert _count(AuditEvent, AuditEvent.action == "task.completed") == 1
    drain_jobs()
    assert _count(Notification, Notification.kind == "profile") == 1
    status = _request(request_id).status
    first_name = db.session.get(Patient, desk.patient.id).first_name
    assert (status, first_name) in {(APPROVED, "Patricia"), (REJECTED, "Pat")}


def test_two_requests_at_once_make_one(desk, app):
    actor, patient_id = desk.actor(), desk.patient.id
    outcomes = parallel(
        2, app, lambda i: services.request_change(actor, patient_id, {**NEW_NAME, "last_name": f"N{i}"}, None)
    )
    assert sum(isinstance(o, services.ProfileError) for o in outcomes) == 1, outcomes
    assert _count(ProfileChangeRequest) == 1
