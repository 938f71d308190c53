"""The demo's self-service activity: refill requests, dose marks, symptom entries and care plans exist."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from healthcrm.care.models import Task
from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.portal.models import PortalEvent
from healthcrm.selfcare.models import PENDING, CarePlanVersion, DoseMark, RefillRequest, SymptomEntry
from healthcrm.tenant_scope import all_tenants


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.demo_seeded
def test_the_demo_has_refills_symptoms_doses_and_care_plans(app):
    seed_demo(None)
    assert _count(RefillRequest, RefillRequest.status == PENDING) >= 1
    assert _count(RefillRequest, RefillRequest.status != PENDING) >= 1
    assert _count(DoseMark) > 0 and _count(SymptomEntry) > 0 and _count(CarePlanVersion) > 0


@pytest.mark.demo_seeded
def test_the_events_the_demo_raises_are_handled_so_its_tasks_exist_at_once(app, drain_jobs):
    seed_demo(None)
    drain_jobs()
    assert _count(PortalEvent) > 0
    assert _count(PortalEvent, PortalEvent.handled_at.is_(None)) == 0
    # The pending refill request has its task, made by the handler (not only the seeded sample tasks).
    assert _count(Task, Task.event_id.is_not(None), Task.kind == "refill") >= 1
