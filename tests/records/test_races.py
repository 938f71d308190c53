"""What two requests can do to one record at once: an edit racing finalization never changes a finalized
record, on SQLite and PostgreSQL, with real threads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.records.services import (
    DiagnosisInput,
    RecordError,
    RecordInput,
    create_record,
    finalize_record,
    update_record,
)
from tests.concurrency import parallel
from tests.factories import make_patient, make_tenant, make_user

ROUNDS = 6
EDITORS = 5


def _input(doctor_id: int, complaint: str) -> RecordInput:
    return RecordInput(
        doctor_id=doctor_id,
        visit_at=datetime(2026, 11, 20, 15, 30),
        chief_complaint=complaint,
        diagnoses=[DiagnosisInput(code="K70.31", is_primary=True)],
    )


def test_an_edit_racing_finalization_never_changes_the_finalized_record(app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    patient = make_patient(tenant)
    db.session.commit()
    # Plain values only: the threads must not touch the test's own session (its rows expire on commit).
    actor = Actor(tenant_id=tenant.id, user_id=doctor.id, role="doctor")
    doctor_id, patient_id = doctor.id, patient.id

    for round_ in range(ROUNDS):
        record_id = create_record(actor, patient_id, _input(doctor_id, "first")).id

        def work(index: int, record_id=record_id, round_=round_):
            if index == 0:
                return finalize_record(actor, record_id).status
            return update_record(actor, record_id, _input(doctor_id, f"edit {round_}.{index}")).status

        outcomes = parallel(EDITORS + 1, app, work)
        assert outcomes[0] == FINALIZED
        for outcome in outcomes[1:]:
            assert outcome == "draft" or isinstance(outcome, RecordError), outcome

        db.session.rollback()
        events = list(
            db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.resource_type == "record", AuditEvent.resource_id == str(record_id))
                .order_by(AuditEvent.id)
            )
        )
        actions = [event.action for event in events]
        # Nothing is written to the record after it was finalized ...
        assert actions[-1] == "record.finalize", actions
        # ... and what was finalized is what the last accepted edit left.
        record = db.session.get(MedicalRecord, record_id)
        accepted = sum(1 for outcome in outcomes[1:] if outcome == "draft")
        assert actions.count("record.update") == accepted
        if accepted == 0:
            assert record.chief_complaint == "first"
