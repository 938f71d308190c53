"""The purge: every row and stored file of the patient, found from the metadata; others untouched; the
audit event and RecordPurge without names; holds block it, also one placed after the confirmation; a
purge runs once however often it is asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import time_machine
from flask import current_app
from sqlalchemy import func, select

from healthcrm.accounts.models import Tenant
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, verify_chain
from healthcrm.clock import utcnow
from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.files.storage import get_storage
from healthcrm.files.uploads import tenant_usage
from healthcrm.jobs.models import Job
from healthcrm.jobs.queue import enqueue, get_queue
from healthcrm.jobs.registry import TASKS
from healthcrm.jobs.runner import run_job
from healthcrm.patients.models import Patient
from healthcrm.retention import services
from healthcrm.retention.models import LegalHold, PurgedFile, RecordPurge
from healthcrm.retention.purge import (
    CLINIC_ONLY_TABLES,
    KEPT_TABLES,
    NOT_PATIENT_JOBS,
    PATIENT_JOBS,
    find_patient_rows,
    purge_tables,
)
from healthcrm.tenant_export.archive import clinic_tables
from tests.concurrency import parallel
from tests.factories import make_portal_user, make_tenant, make_user
from tests.retention.factories import add_file, add_visit, old_patient


def _admin_actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    return tenant, make_user(tenant, "admin"), make_user(tenant, "doctor")


def _tables_reaching_patients(*, through_users: bool = True) -> set[str]:
    """Tables with a patient_id column, and every table that reaches one of them through foreign keys
    (optionally not through `users`: staff tables point at users, only ever staff)."""
    reaching = {t.name for t in clinic_tables() if "patient_id" in t.c} | {"patients"}
    if not through_users:
        reaching.discard("users")
    grew = True
    while grew:
        grew = False
        for table in clinic_tables():
            if table.name in reaching or (not through_users and table.name == "users"):
                continue
            if any(fk.column.table.name in reaching for fk in table.foreign_keys):
                reaching.add(table.name)
                grew = True
    return reaching


def test_every_clinic_table_is_purged_kept_or_named_as_holding_no_patient_data(app):
    """A new table of clinic data must be reachable from the patient (a patient_id or a foreign key) or be
    named in CLINIC_ONLY_TABLES / KEPT_TABLES: otherwise this fails, instead of a purge missing it."""
    tenant_tables = {t.name for t in db.metadata.sorted_tables if "tenant_id" in t.c}
    purged = {t.name for t in purge_tables()}
    reaching = _tables_reaching_patients() - KEPT_TABLES
    unclassified = purged - reaching
    assert not unclassified, (
        f"tables neither reaching patients nor listed as clinic-only: {sorted(unclassified)}"
    )
    assert tenant_tables == purged | CLINIC_ONLY_TABLES | KEPT_TABLES
    clinical = _tables_reaching_patients(through_users=False)
    assert not (CLINIC_ONLY_TABLES & clinical), sorted(CLINIC_ONLY_TABLES & clinical)
    for name in CLINIC_ONLY_TABLES:
        assert "patient_id" not in db.metadata.tables[name].c


def test_every_job_kind_is_known_to_the_purge(app):
    app_kinds = {kind for kind in TASKS if not kind.startswith("tests.")}  # other tests register their own
    assert app_kinds == set(PATIENT_JOBS) | NOT_PATIENT_JOBS
    for table, _position in PATIENT_JOBS.values():
        assert table in {t.name for t in purge_tables()}


def _rows_with_patient_column(patient_id: int) -> dict[str, int]:
    found = {}
    for table in clinic_tables():
        if "patient_id" in table.c and table.name not in KEPT_TABLES:
            n = db.session.scalar(
                select(func.count()).select_from(table).where(table.c.patient_id == patient_id)
            )
            if n:
                found[table.name] = n
    return found


def _counts(tenant_id: int) -> dict[str, int]:
    return {
        t.name: db.session.scalar(select(func.count()).select_from(t).where(t.c.tenant_id == tenant_id))
        for t in purge_tables()
    }


@pytest.mark.all_tenants
def test_a_demo_patients_every_row_and_file_goes_and_nobody_elses(app, inline_jobs):
    seed_demo("demo-password-1")
    tenant = db.session.scalar(select(Tenant).order_by(Tenant.id))
    admin = make_user(tenant, "admin")
    storage = get_storage(current_app)
    # The demo patient with data in the most tables.
    patients = list(db.session.scalars(select(Patient.id).where(Patient.tenant_id == tenant.id)))
    chosen = max(patients, key=lambda pid: len(find_patient_rows(tenant.id, pid).counts()))
    found = find_patient_rows(tenant.id, chosen)
    counts = found.counts()
    assert len(counts) >= 15, counts  # records, labs, prescriptions, messages, appointments, portal, …
    keys = services.stored_keys(found, tenant.id)[0]
    before, used_before = _counts(tenant.id), tenant_usage(tenant.id)
    with time_machine.travel(utcnow().replace(tzinfo=UTC) + timedelta(days=365 * 120)):
        result = services.purge_patient(tenant.id, chosen, admin.id)
    assert result["purged"], result
    db.session.expire_all()
    assert _rows_with_patient_column(chosen) == {}
    assert find_patient_rows(tenant.id, chosen).counts() == {}
    after = _counts(tenant.id)
    assert {name: before[name] - after[name] for name in before if before[name] != after[name]} == counts
    for key in keys:
        assert storage.head(key) is None, key
    assert tenant_usage(tenant.id) < used_before or not keys  # the quota gets the space back
    purge = db.session.scalar(select(RecordPurge).where(RecordPurge.patient_id == chosen))
    assert purge.counts["rows"] == counts and purge.counts["files"] == len(keys)
    assert purge.files_deleted_at is not None
    assert db.session.scalar(select(func.count()).select_from(PurgedFile)) == 0
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "retention.purge"))
    assert (event.patient_id, event.actor_user_id, event.outcome) == (chosen, admin.id, "success")
    assert json.loads(event.changed_fields) == sorted(counts)
    # The patient's earlier audit events stay (append-only), and the chain still verifies.
    assert (
        db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.patient_id == chosen))
        > 1
    )
    assert verify_chain().intact


def test_purging_every_patient_of_the_demo_leaves_only_staff_rows(app, inline_jobs):
    """What a purge misses shows up here: with every patient gone, only the staff's own rows remain."""
    seed_demo("demo-password-1")
    tenant = db.session.scalar(select(Tenant).order_by(Tenant.id))
    admin = make_user(tenant, "admin")
    ids = list(db.session.scalars(select(Patient.id).where(Patient.tenant_id == tenant.id)))
    with time_machine.travel(utcnow().replace(tzinfo=UTC) + timedelta(days=365 * 120)):
        for patient_id in ids:
            assert services.purge_patient(tenant.id, patient_id, admin.id)["purged"]
    db.session.expire_all()
    left = {name: n for name, n in _counts(tenant.id).items() if n}
    staff_tables = {"users", "user_sessions", "account_tokens", "recovery_codes", "jobs"}
    assert set(left) <= staff_tables, left
    users = db.metadata.tables["users"]
    assert not db.session.scalar(
        select(func.count())
        .select_from(users)
        .where(users.c.role == "patient", users.c.tenant_id == tenant.id)
    )
    assert get_storage(current_app).list_keys(f"{tenant.id}/records/") == []


def test_a_purge_removes_the_patients_portal_account_files_and_leaves_others(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor, first_name="Gone", last_name="Away")
    portal = make_portal_user(patient)
    record = db.session.scalar(
        select(services.MedicalRecord).where(services.MedicalRecord.patient_id == patient.id)
    )
    key = add_file(record).storage_key
    other = old_patient(tenant, doctor)
    other_record = add_visit(other, doctor, datetime(2002, 1, 1))
    other_key = add_file(other_record, b"%PDF-1.4 keep me").storage_key
    portal_id, other_id, mrn = portal.id, other.id, patient.mrn
    patient_id = patient.id
    storage = get_storage(current_app)
    result = services.purge_patient(tenant.id, patient_id, admin.id)
    assert result["purged"] and result["files"] == 1
    db.session.expire_all()
    assert storage.head(key) is None
    assert storage.head(other_key) is not None
    assert db.session.get(Patient, other_id) is not None
    assert db.session.get(services.User, portal_id) is None
    purge = db.session.scalar(select(RecordPurge))
    text = json.dumps(purge.counts)
    assert "Gone" not in text and "Away" not in text and mrn not in text and "scan" not in text
    assert purge.counts["rows"]["users"] == 1 and purge.counts["files"] == 1
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purge")).all()
    assert len(events) == 1
    assert "Gone" not in (events[0].changed_fields or "") and events[0].resource_id == str(patient_id)


def test_a_hold_blocks_the_purge_and_is_audited(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    services.place_hold(_admin_actor(admin), patient.id, "Case 2026-14, counsel's request")
    assert services.purge_patient(tenant.id, patient.id, admin.id) == {
        "purged": False,
        "reason": "legal_hold",
    }
    assert db.session.get(Patient, patient.id) is not None
    denied = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "retention.purge"))
    assert (denied.outcome, json.loads(denied.changed_fields)) == ("denied", ["legal_hold"])
    assert db.session.scalar(select(func.count()).select_from(RecordPurge)) == 0


def test_a_hold_placed_after_the_confirmation_blocks_the_queued_purge(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    queue = get_queue("retention-test", connection=fakeredis.FakeRedis(), is_async=True)  # queued, not run
    job_id = enqueue(
        services.PURGE_JOB, patient.id, admin.id, tenant_id=tenant.id, user_id=admin.id, queue=queue
    )
    services.place_hold(_admin_actor(admin), patient.id, "Records requested by the court")
    run_job(job_id)
    db.session.expire_all()
    assert db.session.get(Patient, patient.id) is not None
    assert db.session.get(Job, job_id).result == {"purged": False, "reason": "legal_hold"}
    # Released, the same job run again purges.
    services.release_hold(_admin_actor(admin), patient.id)
    assert services.purge_patient(tenant.id, patient.id, admin.id)["purged"]


def test_a_patient_no_longer_due_when_the_job_runs_is_kept(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    add_visit(patient, doctor, utcnow() - timedelta(days=3))  # came back since the report
    assert services.purge_patient(tenant.id, patient.id, admin.id) == {"purged": False, "reason": "not_due"}
    assert db.session.get(Patient, patient.id) is not None


def test_a_purge_run_twice_or_for_another_clinics_patient_changes_nothing_more(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    other_tenant = make_tenant("Other")
    stranger = old_patient(other_tenant, make_user(other_tenant, "doctor"))
    first = services.purge_patient(tenant.id, patient.id, admin.id)
    again = services.purge_patient(tenant.id, patient.id, admin.id)
    assert first["purged"] and again == {"purged": True, "purge_id": first["purge_id"], "already": True}
    refused = services.purge_patient(tenant.id, stranger.id, admin.id)
    assert refused == {"purged": False, "reason": "no_such_patient"}
    assert db.session.get(Patient, stranger.id) is not None
    assert db.session.scalar(select(func.count()).select_from(RecordPurge)) == 1
    successes = select(func.count()).where(
        AuditEvent.action == "retention.purge", AuditEvent.outcome == "success"
    )
    assert db.session.scalar(successes) == 1


def test_files_left_after_an_interrupted_purge_are_deleted_by_the_retry(app, clinic, monkeypatch):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    record = db.session.scalar(
        select(services.MedicalRecord).where(services.MedicalRecord.patient_id == patient.id)
    )
    key = add_file(record).storage_key
    patient_id = patient.id
    storage = get_storage(current_app)
    monkeypatch.setattr(
        services, "delete_purged_files", lambda *_a: (_ for _ in ()).throw(OSError("storage down"))
    )
    with pytest.raises(OSError):
        services.purge_patient(tenant.id, patient_id, admin.id)
    monkeypatch.undo()
    db.session.rollback()
    # The rows and the trace are committed; the file waits on the work list.
    assert db.session.scalar(select(func.count()).select_from(Patient).where(Patient.id == patient_id)) == 0
    assert db.session.scalar(select(func.count()).select_from(PurgedFile)) == 1
    assert storage.head(key) is not None
    assert services.purge_patient(tenant.id, patient_id, admin.id)["already"]  # the job's retry
    assert storage.head(key) is None
    assert db.session.scalar(select(RecordPurge.files_deleted_at)) is not None
    assert services.finish_purged_files() == 0


# --- at once, with real threads -------------------------------------------------------------------------


def test_two_purges_of_one_patient_at_once_purge_once(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    add_file(
        db.session.scalar(
            select(services.MedicalRecord).where(services.MedicalRecord.patient_id == patient.id)
        )
    )
    tenant_id, patient_id, admin_id = tenant.id, patient.id, admin.id
    outcomes = parallel(3, app, lambda _i: services.purge_patient(tenant_id, patient_id, admin_id))
    assert all(isinstance(o, dict) and o["purged"] for o in outcomes), outcomes
    assert sum(1 for o in outcomes if not o.get("already")) == 1
    assert db.session.scalar(select(func.count()).select_from(RecordPurge)) == 1
    successes = select(func.count()).where(
        AuditEvent.action == "retention.purge", AuditEvent.outcome == "success"
    )
    assert db.session.scalar(successes) == 1
    assert verify_chain().intact


def test_a_hold_and_a_purge_at_once_never_both_succeed(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    actor, tenant_id, patient_id, admin_id = _admin_actor(admin), tenant.id, patient.id, admin.id

    def work(i: int):
        if i == 0:
            return services.place_hold(actor, patient_id, "Litigation").id
        return services.purge_patient(tenant_id, patient_id, admin_id)

    hold, purge = parallel(2, app, work)
    db.session.expire_all()
    if isinstance(purge, dict) and purge["purged"]:
        assert isinstance(hold, services.NotFound), hold  # the patient was gone when the hold came
        assert db.session.scalar(select(func.count()).select_from(LegalHold)) == 0
    else:
        assert isinstance(hold, int) and purge == {"purged": False, "reason": "legal_hold"}, (hold, purge)
        assert db.session.get(Patient, patient_id) is not None


def test_two_holds_at_once_give_one(app, clinic):
    tenant, admin, doctor = clinic
    patient = old_patient(tenant, doctor)
    actor, patient_id = _admin_actor(admin), patient.id
    outcomes = parallel(2, app, lambda i: services.place_hold(actor, patient_id, f"Case {i}").id)
    assert sorted(type(o).__name__ for o in outcomes) == ["RetentionError", "int"], outcomes
    assert db.session.scalar(select(func.count()).select_from(LegalHold)) == 1
