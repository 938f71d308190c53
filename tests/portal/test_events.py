"""Portal events: raised with the action, handled once however often or however many workers try."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from healthcrm.audit.services import Actor
from healthcrm.care.models import Task
from healthcrm.care.services import open_task
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.portal import events
from healthcrm.portal.models import Notification, PortalEvent
from healthcrm.portal.notifications import notify
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.factories import make_patient, make_portal_user, make_tenant

KIND = "test.happened"
calls: list[int] = []


@events.handles(KIND)
def _make_task_and_notice(event: PortalEvent) -> None:
    calls.append(event.id)
    open_task(event, "test", "Look at this")
    user = db.session.scalar(select(PortalEvent.actor_user_id).where(PortalEvent.id == event.id))
    notify(event, user, "message", "Something is waiting")


@pytest.fixture
def raised(app):
    calls.clear()
    tenant = make_tenant()
    patient = make_patient(tenant)
    user = make_portal_user(patient)
    actor = Actor(tenant_id=tenant.id, user_id=user.id, role="patient")
    event = events.raise_event(actor, KIND, patient_id=patient.id, subject=("thing", 7))
    db.session.commit()  # not events.commit(): the tests handle it themselves
    events.discard_pending()
    return tenant.id, event.id


def _count(model) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model))


def test_an_event_handled_twice_makes_one_task_and_one_notification(app, raised):
    tenant_id, event_id = raised
    assert events.handle_event(event_id, tenant_id) is True
    assert events.handle_event(event_id, tenant_id) is False
    assert calls == [event_id]
    assert _count(Task) == 1
    assert _count(Notification) == 1


def test_two_workers_racing_handle_an_event_once(app, raised):
    tenant_id, event_id = raised
    outcomes = parallel(4, app, lambda _i: events.handle_event(event_id, tenant_id))
    assert sorted(outcomes, key=str) == [False, False, False, True], outcomes
    assert _count(Task) == 1
    assert _count(Notification) == 1


def test_an_event_of_another_clinic_is_not_handled(app, raised):
    _tenant_id, event_id = raised
    other = make_tenant(name="Other")
    assert events.handle_event(event_id, other.id) is False
    assert calls == []


def test_a_failing_handler_leaves_the_event_for_a_retry(app, raised, monkeypatch):
    tenant_id, event_id = raised

    def broken(_event):
        raise RuntimeError("down")

    monkeypatch.setitem(events.HANDLERS, KIND, [broken])
    with pytest.raises(RuntimeError):
        events.handle_event(event_id, tenant_id)
    with all_tenants("test"):
        assert db.session.get(PortalEvent, event_id).handled_at is None
    monkeypatch.setitem(events.HANDLERS, KIND, [_make_task_and_notice])
    assert events.handle_event(event_id, tenant_id) is True


def test_the_sweep_handles_what_no_job_did_and_leaves_recent_events(app, raised):
    _tenant_id, event_id = raised
    assert events.sweep_unhandled().startswith("0 of 0")
    with time_machine.travel(utcnow() + events.SWEEP_AFTER + timedelta(seconds=5), tick=False):
        assert events.sweep_unhandled() == "1 of 1 unhandled events handled"
    assert calls == [event_id]


def test_commit_queues_the_handling_job(app, inline_jobs):
    calls.clear()
    tenant = make_tenant()
    patient = make_patient(tenant)
    user = make_portal_user(patient)
    actor = Actor(tenant_id=tenant.id, user_id=user.id, role="patient")
    event = events.raise_event(actor, KIND, patient_id=patient.id)
    events.commit()
    assert calls == [event.id]
    assert _count(Task) == 1
