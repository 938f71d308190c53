"""The session keeps rows loaded after a commit (`expire_on_commit=False`): a service can audit and commit
once, at its end, and the page still renders what it returned without reloading each row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event

from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.patients import services as patients
from healthcrm.records import services as records
from healthcrm.records.models import MedicalRecord
from tests.factories import make_patient, make_tenant, make_user


def _statements_while(read) -> list[str]:
    statements: list[str] = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        read()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    return statements


def test_rows_a_service_returned_after_its_commit_need_no_more_queries(app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    for n in range(3):
        patient = make_patient(tenant, last_name=f"Sample{n}")
        db.session.add(
            MedicalRecord(
                tenant_id=tenant.id, patient_id=patient.id, doctor_id=doctor.id, author_id=doctor.id,
                visit_at=datetime(2025, 3, 14, 9), chief_complaint=f"Visit {n}", status="draft",
            )
        )  # fmt: skip
    db.session.commit()
    db.session.expire_all()
    actor = Actor(tenant_id=tenant.id, user_id=doctor.id, role=doctor.role)

    page = records.search_records(actor, records.RecordFilters())
    patient_page = patients.search_patients(actor)

    def read_everything_the_lists_show():
        for record in page.records:
            assert record.chief_complaint and record.patient.full_name and record.doctor.full_name
            assert record.diagnoses == []
        for patient in patient_page.patients:
            assert patient.mrn and patient.assigned_coach is None

    assert _statements_while(read_everything_the_lists_show) == []
