"""Patients added at the same moment each get their own MRN (SQLite and PostgreSQL, real threads)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.patients.services import create_patient
from tests.concurrency import parallel
from tests.factories import make_patient, make_tenant, make_user

THREADS = 8


def test_parallel_new_patients_get_distinct_mrns(app):
    tenant = make_tenant()
    desk = make_user(tenant, "front_desk")
    make_patient(tenant)  # one made before the counter existed
    db.session.commit()
    actor = Actor(tenant_id=tenant.id, user_id=desk.id, role="front_desk")

    def work(index: int) -> str:
        values = {
            "first_name": f"Pat{index}",
            "last_name": "Parallel",
            "date_of_birth": date(1980, 1, 1 + index),
            "sex": "female",
            "care_stage": "new",
        }
        return create_patient(actor, values, []).mrn

    mrns = parallel(THREADS, app, work)
    assert all(isinstance(mrn, str) for mrn in mrns), mrns
    db.session.rollback()
    stored = db.session.scalars(select(Patient.mrn).where(Patient.tenant_id == tenant.id)).all()
    assert len(stored) == len(set(stored)) == THREADS + 1
    assert set(mrns) <= set(stored)
