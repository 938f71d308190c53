"""Shared builders for the self-service tests: a clinic with a doctor, a coach, a patient with a portal
account and a finalized record carrying prescriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.records.models import FINALIZED, MedicalRecord, Prescription
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user


@dataclass
class Clinic:
    tenant: object
    doctor: object
    nurse: object
    coach: object
    patient: object
    user: object  # None until the patient registers
    record: object
    daily: object  # "once daily", ongoing
    twice: object  # "twice daily", 30 days
    old: object  # a 7-day course that ended

    def actor(self, user=None) -> Actor:
        user = user or self.user
        return Actor(tenant_id=self.tenant.id, user_id=user.id, role=user.role)


def add_record(
    tenant, patient, doctor, *, days_ago: int, drugs: list[tuple], status=FINALIZED
) -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=utcnow() - timedelta(days=days_ago),
        chief_complaint="Follow-up",
        status=status,
        finalized_at=utcnow() if status == FINALIZED else None,
    )
    db.session.add(record)
    db.session.flush()
    for drug, frequency, duration in drugs:
        db.session.add(
            Prescription(
                tenant_id=tenant.id,
                record_id=record.id,
                drug=drug,
                dose="10 mg",
                route="oral",
                frequency=frequency,
                duration=duration,
                refills=2,
            )
        )
    db.session.commit()
    return record


def make_clinic(name: str = "Self Clinic", *, account: bool = True) -> Clinic:
    """The clinic; the patient has a portal account unless `account` is False (they will register)."""
    tenant = make_tenant(name)
    doctor = make_user(tenant, "doctor")
    nurse = make_user(tenant, "nurse")
    coach = make_user(tenant, "coach")
    patient = make_patient(tenant, assigned_coach_id=coach.id)
    user = make_portal_user(patient) if account else None
    old_record = add_record(
        tenant, patient, doctor, days_ago=40, drugs=[("Amoxicillin", "three times daily", "7 days")]
    )
    record = add_record(
        tenant,
        patient,
        doctor,
        days_ago=3,
        drugs=[("Lisinopril", "once daily", None), ("Metformin", "twice daily", "30 days")],
    )
    daily, twice = record.prescriptions
    return Clinic(
        tenant, doctor, nurse, coach, patient, user, record, daily, twice, old_record.prescriptions[0]
    )


def sign_in(client, user):
    response = login(client, user.email)
    assert response.status_code in (302, 303), response.status_code
    return client
