"""`flask demo`: the two demo clinics, idempotent seeding, and the demo password."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import func, select

from healthcrm.accounts.models import PATIENT, STAFF_ROLES, Tenant, User
from healthcrm.accounts.secrets import password_problem, verify_password
from healthcrm.audit.models import AuditEvent
from healthcrm.clock import utcnow
from healthcrm.demo.data import DemoError, seed_demo
from healthcrm.extensions import db
from healthcrm.patients.models import CARE_STAGES, SEXES, EmergencyContact, Patient
from healthcrm.records.icd10 import load_codes

INSURERS = {
    "Aetna",
    "Blue Cross Blue Shield",
    "Cigna",
    "UnitedHealthcare",
    "Humana",
    "Kaiser Permanente",
    "Medicare",
    "Medicaid",
}


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _snapshot() -> dict:
    """Everything the demo writes, as plain values."""
    return {
        "tenants": _count(Tenant),
        "users": sorted(db.session.execute(select(User.email, User.role, User.password_hash)).all()),
        "patients": _count(Patient),
        "contacts": _count(EmergencyContact),
        "events": _count(AuditEvent),
    }


def _tenant(slug: str) -> Tenant:
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_creates_two_clinics_with_every_staff_role(app):
    result = seed_demo(None)

    assert result.created_clinics == ["Riverside Family Clinic", "Lakeside Hepatology"]
    riverside, lakeside = _tenant("riverside"), _tenant("lakeside")
    assert (riverside.name, riverside.timezone) == ("Riverside Family Clinic", "America/Chicago")
    assert (lakeside.name, lakeside.timezone) == ("Lakeside Hepatology", "America/New_York")
    assert lakeside.mfa_required_for_staff is False
    for tenant in (riverside, lakeside):
        staff_query = select(User).where(User.tenant_id == tenant.id, User.role != PATIENT)
        staff = db.session.scalars(staff_query).all()
        assert sorted(u.role for u in staff) == sorted(STAFF_ROLES)
        emails = {u.role: u.email for u in staff}
        assert emails["admin"] == f"admin@{tenant.slug}.example"
        assert emails["front_desk"] == f"frontdesk@{tenant.slug}.example"
        doctor = next(u for u in staff if u.role == "doctor")
        assert doctor.full_name.startswith("Dr. ")


@pytest.mark.demo_seeded
def test_patients_look_like_a_real_practice(app):
    seed_demo(None)

    for slug, prefix in (("riverside", "RFC"), ("lakeside", "LKH")):
        tenant = _tenant(slug)
        patients = db.session.scalars(select(Patient).where(Patient.tenant_id == tenant.id)).all()
        assert 40 <= len(patients) <= 60
        assert all(re.fullmatch(rf"{prefix}-\d{{6}}", p.mrn) for p in patients)
        assert len({p.mrn for p in patients}) == len(patients)
        for patient in patients:
            assert 18 <= patient.age_on(utcnow().date()) <= 90
            assert patient.sex in SEXES
            assert patient.email and patient.phone and patient.address_line and patient.postal_code
            assert patient.insurance_provider in INSURERS and patient.insurance_member_id
            assert 1 <= len(patient.emergency_contacts) <= 2
            assert all(c.tenant_id == tenant.id for c in patient.emergency_contacts)
        assert {p.care_stage for p in patients} == set(CARE_STAGES)
        coached = [p for p in patients if p.assigned_coach_id is not None]
        assert len(coached) > len(patients) / 2
        coach = db.session.get(User, coached[0].assigned_coach_id)
        assert (coach.role, coach.tenant_id) == ("coach", tenant.id)


@pytest.mark.demo_seeded
def test_some_patients_get_portal_accounts(app):
    seed_demo(None)

    for slug in ("riverside", "lakeside"):
        tenant = _tenant(slug)
        portal = db.session.scalars(
            select(User).where(User.tenant_id == tenant.id, User.role == PATIENT).order_by(User.id)
        ).all()
        assert len(portal) == 5
        assert portal[0].email == f"patient@{slug}.example"
        for user in portal:
            assert user.patient.tenant_id == tenant.id
            assert user.email == user.patient.email
            assert user.full_name == user.patient.full_name


def test_generated_password_works_for_every_demo_user(app):
    result = seed_demo(None)

    assert result.password is not None and result.passwords_changed
    assert password_problem(result.password) is None
    users = db.session.scalars(select(User)).all()
    assert len(users) == 20
    # Hashed once and shared: one slow argon2 hash for the whole demo.
    assert len({u.password_hash for u in users}) == 1
    assert verify_password(users[0].password_hash, result.password)
    assert len(_events("demo.seeded")) == 2
    assert len(_events("demo.passwords_set")) == 2


@pytest.mark.demo_seeded
def test_seeding_twice_changes_nothing(app):
    seed_demo(None)
    before = _snapshot()

    again = seed_demo(None)

    assert again.created_clinics == []
    assert again.password is None and not again.passwords_changed
    assert len(again.logins) == 20
    assert _snapshot() == before


@pytest.mark.demo_seeded
def test_password_option_resets_only_the_passwords(app):
    seed_demo(None)
    before = _snapshot()

    result = seed_demo("demo-password-1")

    assert result.created_clinics == [] and result.password == "demo-password-1" and result.passwords_changed
    after = _snapshot()
    assert {k: v for k, v in after.items() if k not in {"users", "events"}} == {
        k: v for k, v in before.items() if k not in {"users", "events"}
    }
    assert [(e, r) for e, r, _ in after["users"]] == [(e, r) for e, r, _ in before["users"]]
    assert after["events"] == before["events"] + 2
    for user in db.session.scalars(select(User)):
        assert verify_password(user.password_hash, "demo-password-1")


def test_same_password_twice_writes_nothing_the_second_time(app):
    seed_demo("demo-password-1")
    before = _snapshot()

    result = seed_demo("demo-password-1")

    assert result.password == "demo-password-1" and not result.passwords_changed
    assert _snapshot() == before


def test_weak_password_is_refused_and_nothing_is_created(app):
    with pytest.raises(DemoError):
        seed_demo("aaaaaaaaaaaaaaaa")

    assert _count(Tenant) == 0 and _count(User) == 0


def _people() -> list[tuple]:
    patients = select(Patient.mrn, Patient.first_name, Patient.last_name, Patient.email, Patient.phone)
    return [
        *db.session.execute(patients.order_by(Patient.id)).all(),
        *db.session.execute(select(User.email, User.full_name).order_by(User.id)).all(),
    ]


@pytest.mark.demo_seeded
def test_every_database_gets_the_same_people(app, tmp_path):
    seed_demo(None)
    first = _people()

    # A second, separate database: the seeds alone decide who is in the demo.
    other = Flask(__name__)
    other.config.update(
        {key: value for key, value in app.config.items() if not key.startswith("SQLALCHEMY_")},
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'other-demo.db'}",
        STORAGE_LOCAL_ROOT=str(tmp_path / "storage"),  # the demo's patient documents
        REDIS_URL="",  # the events the demo raises are handled inline, in this database
    )
    db.init_app(other)
    with other.app_context():
        db.create_all()
        load_codes()  # the demo's diagnoses come from the code list, as after `make migrate`
        seed_demo("demo-password-1")
        assert _people() == first
        db.session.remove()
        db.engine.dispose()


def test_cli_prints_the_logins_and_the_url(app):
    result = app.test_cli_runner().invoke(args=["demo", "--password", "demo-password-1"])

    assert result.exit_code == 0, result.output
    for email in (
        "admin@riverside.example",
        "doctor@lakeside.example",
        "frontdesk@riverside.example",
        "patient@riverside.example",
        "patient@lakeside.example",
    ):
        assert email in result.output
    assert "Riverside Family Clinic" in result.output and "Lakeside Hepatology" in result.output
    assert "http://127.0.0.1:5000" in result.output
    # A password the operator typed is not echoed back.
    assert "demo-password-1" not in result.output
    user = db.session.scalar(select(User).where(User.email == "nurse@lakeside.example"))
    assert verify_password(user.password_hash, "demo-password-1")


def test_cli_prints_a_generated_password_once(app):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["demo"])
    second = runner.invoke(args=["demo"])

    assert first.exit_code == 0 and second.exit_code == 0
    generated = re.search(r"Password for every demo user: (\S+)", first.output).group(1)
    user = db.session.scalar(select(User).where(User.email == "admin@riverside.example"))
    assert verify_password(user.password_hash, generated)
    assert "already exist" in second.output and "unchanged" in second.output
    assert generated not in second.output


def test_cli_refuses_a_weak_password(app):
    result = app.test_cli_runner().invoke(args=["demo", "--password", "short"])

    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    assert _count(Tenant) == 0
