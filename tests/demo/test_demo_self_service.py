"""The demo's self-service activity: refill requests, dose marks, symptom entries and care plans exist."""

from __future__ import annotations

from sqlalchemy import func, select

from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.selfcare.models import PENDING, CarePlanVersion, DoseMark, RefillRequest, SymptomEntry
from healthcrm.tenant_scope import all_tenants


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_demo_has_refills_symptoms_doses_and_care_plans(app):
    seed_demo(None)
    assert _count(RefillRequest, RefillRequest.status == PENDING) >= 1
    assert _count(RefillRequest, RefillRequest.status != PENDING) >= 1
    assert _count(DoseMark) > 0 and _count(SymptomEntry) > 0 and _count(CarePlanVersion) > 0
