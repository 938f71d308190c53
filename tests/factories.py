"""Builders for test data: factory_boy factories that write through the ORM and commit, like the demo command,
and the `make_*` shorthands the tests call.

    TenantFactory(), UserFactory(tenant=t, role="nurse"), PatientFactory(tenant=t, last_name="Okafor")
"""

from __future__ import annotations

import itertools
from datetime import date

import factory
from factory.alchemy import SQLAlchemyModelFactory
from flask import current_app

from healthcrm.accounts.models import PATIENT, Tenant, User
from healthcrm.accounts.secrets import hash_password
from healthcrm.extensions import db
from healthcrm.patients.models import Patient

PASSWORD = "correct horse battery staple"
# One counter for every factory, so that names, emails and MRNs never meet across them.
_seq = itertools.count(1)
_hashes: dict[tuple[str, bool], str] = {}


def hashed_password(password: str) -> str:
    """An argon2 hash of `password`, made once per password: the tests make hundreds of users with the same
    one, and signing in still verifies it for real. (A salt shared by test users protects nothing anyway.)"""
    key = (password, bool(current_app.config.get("TESTING")))
    if key not in _hashes:
        _hashes[key] = hash_password(password)
    return _hashes[key]


class _Factory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731 - the session of the current app context
        sqlalchemy_session_persistence = "commit"


class TenantFactory(_Factory):
    class Meta:
        model = Tenant
        exclude = ("n", "base_name")

    n = factory.LazyFunction(lambda: next(_seq))
    base_name = "Test Clinic"
    name = factory.LazyAttribute(lambda o: f"{o.base_name} {o.n}")
    slug = factory.LazyAttribute(lambda o: f"clinic-{o.n}")
    timezone = "America/Chicago"
    # Explicit, though Chicago would start with US units: tests read vitals in SI unless they ask.
    unit_system = "metric"


class UserFactory(_Factory):
    class Meta:
        model = User
        exclude = ("n", "tenant", "password")

    n = factory.LazyFunction(lambda: next(_seq))
    tenant = factory.SubFactory(TenantFactory)
    password = PASSWORD
    tenant_id = factory.LazyAttribute(lambda o: o.tenant.id)
    role = "doctor"
    email = factory.LazyAttribute(lambda o: f"{o.role}{o.n}@clinic{o.tenant.id}.example")
    full_name = factory.LazyAttribute(lambda o: f"{o.role.title()} Person {o.n}")
    password_hash = factory.LazyAttribute(lambda o: hashed_password(o.password) if o.password else None)


class PatientFactory(_Factory):
    class Meta:
        model = Patient
        exclude = ("n", "tenant")

    n = factory.LazyFunction(lambda: next(_seq))
    tenant = factory.SubFactory(TenantFactory)
    tenant_id = factory.LazyAttribute(lambda o: o.tenant.id)
    mrn = factory.LazyAttribute(lambda o: f"T-{o.n:06d}")
    first_name = "Pat"
    last_name = factory.LazyAttribute(lambda o: f"Ient{o.n}")
    date_of_birth = date(1970, 1, 1)
    sex = "female"
    email = factory.LazyAttribute(lambda o: f"patient{o.n}@example.com")
    phone = "555-0100"
    care_stage = "active"


def make_tenant(name: str = "Test Clinic", **fields) -> Tenant:
    return TenantFactory(base_name=name, **fields)


def make_user(tenant: Tenant, role: str = "doctor", *, password: str | None = PASSWORD, **fields) -> User:
    return UserFactory(tenant=tenant, role=role, password=password, **fields)


def make_patient(tenant: Tenant, **fields) -> Patient:
    return PatientFactory(tenant=tenant, **fields)


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
