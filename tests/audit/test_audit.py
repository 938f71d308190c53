"""The audit log: one event per read or change, in the same transaction, hash-chained per clinic."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, record_event, verify_chain
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from tests.factories import login, make_patient, make_tenant, make_user


def _events(action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(db.session.scalars(query))


def test_viewing_and_editing_a_patient_is_audited_with_field_names_only(app, client):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    patient = make_patient(tenant, phone="555-0100")
    login(client, nurse.email)
    client.get(f"/patients/{patient.id}")
    [view] = _events("patient.view")
    assert (view.tenant_id, view.actor_user_id, view.actor_role, view.patient_id) == (
        tenant.id,
        nurse.id,
        "nurse",
        patient.id,
    )
    assert view.request_id and view.ip == "127.0.0.1"

    form = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": "1970-01-01",
        "sex": "female",
        "email": patient.email,
        "phone": "555-0199",
        "care_stage": "active",
        "assigned_coach_id": "0",
    }
    assert client.post(f"/patients/{patient.id}/edit", data=form).status_code == 303
    [update] = _events("patient.update")
    assert json.loads(update.changed_fields) == ["phone"]
    assert "555-0199" not in json.dumps([e.changed_fields for e in _events()])


def test_patient_list_is_audited(app, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "front_desk").email)
    client.get("/patients?q=smith")
    assert len(_events("patient.list")) == 1


def test_a_change_whose_audit_event_fails_is_rolled_back(app):
    tenant = make_tenant()
    patient = make_patient(tenant, first_name="Original")
    patient.first_name = "Changed"
    db.session.flush()
    # An action longer than its column cannot be stored on PostgreSQL; force a failure on both databases
    # by making the event invalid (NOT NULL action).
    with pytest.raises(Exception):  # noqa: B017 - the database's own error type differs per dialect
        record_event(Actor(tenant_id=tenant.id), None)  # type: ignore[arg-type]
    db.session.rollback()
    assert db.session.get(Patient, patient.id).first_name == "Original"


def test_chains_are_per_clinic_and_verify(app):
    a, b = make_tenant(), make_tenant()
    for tenant in (a, b, a):
        record_event(Actor(tenant_id=tenant.id, role="system"), "test.event")
    record_event(Actor(tenant_id=None), "auth.login_failed")
    db.session.commit()
    events = _events()
    a_events = [e for e in events if e.tenant_id == a.id]
    assert a_events[1].prev_hash == a_events[0].hash
    assert next(e for e in events if e.tenant_id == b.id).prev_hash == "0" * 64
    report = verify_chain()
    assert report.intact and report.checked == 4


def test_the_database_refuses_to_change_or_delete_audit_rows(app):
    tenant = make_tenant()
    record_event(Actor(tenant_id=tenant.id), "test.event")
    db.session.commit()
    with pytest.raises(DatabaseError):
        db.session.execute(text("UPDATE audit_log SET action = 'forged'"))
        db.session.commit()
    db.session.rollback()
    with pytest.raises(DatabaseError):
        db.session.execute(text("DELETE FROM audit_log"))
        db.session.commit()
    db.session.rollback()
    assert len(_events()) == 1


def _tamper(sql: str) -> None:
    """Bypass the append-only trigger the way an attacker with database access would."""
    dialect = db.engine.dialect.name
    if dialect == "sqlite":
        db.session.execute(text("DROP TRIGGER audit_log_no_update"))
        db.session.execute(text("DROP TRIGGER audit_log_no_delete"))
    else:
        db.session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"))
    db.session.execute(text(sql))
    if dialect == "postgresql":
        db.session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change"))
    db.session.commit()


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE audit_log SET patient_id = 42 WHERE id = 2", "altered"),
        ("DELETE FROM audit_log WHERE id = 2", "removed"),
    ],
)
def test_verify_reports_the_first_broken_row(app, sql, reason):
    tenant = make_tenant()
    for _ in range(4):
        record_event(Actor(tenant_id=tenant.id), "test.event")
    db.session.commit()
    _tamper(sql)
    report = verify_chain()
    assert not report.intact
    assert report.broken_event_id == (2 if reason == "altered" else 3)
    assert reason in report.reason


def test_verify_sees_the_newest_events_removed_through_the_head_row(app):
    tenant = make_tenant()
    events = [record_event(Actor(tenant_id=tenant.id), "test.event").id for _ in range(4)]
    db.session.commit()
    assert verify_chain().intact
    # What a chain alone cannot show: the tail cut off leaves a valid, shorter chain.
    _tamper(f"DELETE FROM audit_log WHERE id >= {int(events[2])}")  # noqa: S608 - an id, not input
    report = verify_chain()
    assert not report.intact
    assert report.broken_event_id == events[3] and report.broken_tenant_id == tenant.id
    assert "removed" in report.reason


def test_flask_audit_verify_command(app):
    tenant = make_tenant()
    record_event(Actor(tenant_id=tenant.id), "test.event")
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0
    assert "intact" in result.output
    _tamper("UPDATE audit_log SET action = 'forged'")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "BROKEN at event 1" in result.output


def test_admin_audit_page_shows_only_own_clinic(app, client):
    mine, theirs = make_tenant(), make_tenant()
    admin = make_user(mine, "admin")
    record_event(Actor(tenant_id=theirs.id), "other.clinic_event")
    db.session.commit()
    login(client, admin.email)
    page = client.get("/audit").get_data(as_text=True)
    assert "auth.login" in page
    assert "other.clinic_event" not in page
    assert "chain is intact" in client.get("/audit?verify=1").get_data(as_text=True)
