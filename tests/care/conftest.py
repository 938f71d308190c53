"""A clinic with staff, a patient in the portal, and a way to make a task from a portal event."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from healthcrm.accounts.models import Tenant, User
from healthcrm.audit.services import Actor
from healthcrm.care.services import open_task
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.portal import events
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

WEEKDAYS_8_TO_17 = {str(day): [["08:00", "17:00"]] for day in range(5)}


@dataclass
class Clinic:
    tenant: Tenant
    admin: User
    coach: User
    nurse: User
    nurse2: User
    doctor: User
    patient: Patient
    portal_user: User

    def actor(self, user: User) -> Actor:
        return Actor(tenant_id=self.tenant.id, user_id=user.id, role=user.role)

    def event(self, kind: str = "message.sent", subject: tuple[str, int] | None = ("thread", 1)):
        event = events.raise_event(
            self.actor(self.portal_user), kind, patient_id=self.patient.id, subject=subject
        )
        events.discard_pending()
        return event

    def task(self, kind: str = "message", **options):
        event = self.event()
        options.setdefault("pool_roles", ["nurse", "coach"])
        options.setdefault("pool_name", "Care team")
        task = open_task(event, kind, "Answer the patient's message", link="/patients", **options)
        db.session.commit()
        return task


@pytest.fixture
def clinic(app) -> Clinic:
    tenant = make_tenant(timezone="America/New_York", hours=WEEKDAYS_8_TO_17)
    patient = make_patient(tenant, care_stage="new")
    return Clinic(
        tenant=tenant,
        admin=make_user(tenant, "admin"),
        coach=make_user(tenant, "coach"),
        nurse=make_user(tenant, "nurse"),
        nurse2=make_user(tenant, "nurse"),
        doctor=make_user(tenant, "doctor"),
        patient=patient,
        portal_user=make_portal_user(patient),
    )


@pytest.fixture
def signed_in(client):
    def sign_in(user: User):
        response = login(client, user.email)
        assert response.status_code in (302, 303), response.status_code
        return client

    return sign_in
