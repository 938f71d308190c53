"""Builders for test data. They write through the ORM and commit, like the demo command."""

from __future__ import annotations

import itertools
from datetime import date

from healthcrm.accounts.models import PATIENT, Tenant, User
from healthcrm.accounts.secrets import hash_password
from healthcrm.extensions import db
from healthcrm.patients.models import Patient

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


def make_tenant(name: str = "Test Clinic", **fields) -> Tenant:
    n = next(_seq)
    tenant = Tenant(name=f"{name} {n}", slug=f"clinic-{n}", timezone="America/Chicago", **fields)
    db.session.add(tenant)
    db.session.commit()
    return tenant


def make_user(tenant: Tenant, role: str = "doctor", *, password: str | None = PASSWORD, **fields) -> User:
    n = next(_seq)
    user = User(
        tenant_id=tenant.id,
        email=fields.pop("email", f"{role}{n}@clinic{tenant.id}.example"),
        full_name=fields.pop("full_name", f"{role.title()} Person {n}"),
        role=role,
        password_hash=hash_password(password) if password else None,
        **fields,
    )
    db.session.add(user)
    db.session.commit()
    return user


def make_patient(tenant: Tenant, **fields) -> Patient:
    n = next(_seq)
    values = {
        "mrn": f"T-{n:06d}",
        "first_name": "Pat",
        "last_name": f"Ient{n}",
        "date_of_birth": date(1970, 1, 1),
        "sex": "female",
        "email": f"patient{n}@example.com",
        "phone": "555-0100",
        "care_stage": "active",
    }
    values.update(fields)
    patient = Patient(tenant_id=tenant.id, **values)
    db.session.add(patient)
    db.session.commit()
    return patient


def make_portal_user(patient: Patient, *, password: str | None = PASSWORD) -> User:
    return make_user(
        db.session.get(Tenant, patient.tenant_id),
        PATIENT,
        password=password,
        email=patient.email,
        full_name=patient.full_name,
        patient_id=patient.id,
    )


def login(client, email: str, password: str = PASSWORD, *, follow: bool = False):
    return client.post("/login", data={"email": email, "password": password}, follow_redirects=follow)
