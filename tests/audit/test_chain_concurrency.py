"""The chain must not fork when requests audit at the same moment: each event extends the head that the
one before it left, on SQLite (the threaded `make run` default) and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, verify_chain
from healthcrm.extensions import db
from healthcrm.patients.services import get_patient, update_patient
from tests.concurrency import parallel
from tests.factories import make_patient, make_tenant, make_user

THREADS = 8
ROUNDS = 5


def test_parallel_audited_reads_and_writes_keep_one_unbroken_chain(app):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    patient = make_patient(tenant)
    db.session.commit()
    actor = Actor(tenant_id=tenant.id, user_id=nurse.id, role="nurse")
    profile = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth,
        "sex": patient.sex,
        "care_stage": patient.care_stage,
        "email": patient.email,
    }

    patient_id = patient.id  # plain values only in the threads: the test's session is not theirs

    def work(index: int):
        if index % 2:
            return update_patient(actor, patient_id, {**profile, "phone": f"555-01{index:02d}"}, []).id
        return get_patient(actor, patient_id).id

    for _ in range(ROUNDS):
        outcomes = parallel(THREADS, app, work)
        assert outcomes == [patient_id] * THREADS, outcomes

    db.session.rollback()
    events = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == tenant.id)
    )
    assert events == THREADS * ROUNDS
    forks = db.session.execute(
        select(AuditEvent.prev_hash, func.count())
        .where(AuditEvent.tenant_id == tenant.id)
        .group_by(AuditEvent.prev_hash)
        .having(func.count() > 1)
    ).all()
    assert forks == []
    report = verify_chain()
    assert report.intact, report.reason
