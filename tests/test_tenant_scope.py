"""The test-mode check that every SELECT of clinic data from the app's code has a tenant criterion
(healthcrm/tenant_scope.py): a bare query fails, a scoped one passes, an opt-out passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import healthcrm
from healthcrm.extensions import db
from healthcrm.patients.models import EmergencyContact, Patient
from healthcrm.records.models import MedicalRecord
from healthcrm.tenancy import get_scoped, scoped
from healthcrm.tenant_scope import (
    ALL_TENANTS,
    TENANT_SCOPE_VIOLATIONS,
    TenantScopeError,
    all_tenants,
    unscoped_tables,
)
from tests.factories import make_patient, make_tenant


@pytest.fixture
def patient(app):
    return make_patient(make_tenant())


# The check ignores the tests' own queries (only frames of the healthcrm package count), so these tests send
# theirs through a one-line function compiled under a file name inside the package, as if the app sent them.
PROBE = compile(
    "def session_call(method, *args, **kwargs):\n"
    "    return getattr(db.session, method)(*args, **kwargs)\n"
    "def attribute(instance, name):\n"
    "    return getattr(instance, name)\n",
    str(Path(healthcrm.__file__).parent / "tenant_scope_probe.py"),
    "exec",
)


PROBED: dict = {"db": db}
exec(PROBE, PROBED)  # noqa: S102 - our own two-line probe
attribute_as_app = PROBED["attribute"]


@pytest.fixture
def app_code():
    yield PROBED["session_call"]
    TENANT_SCOPE_VIOLATIONS.clear()  # the violations this test made on purpose


def test_a_bare_select_of_clinic_data_fails(app, patient, app_code):
    with pytest.raises(TenantScopeError, match="SELECT of patients without a tenant_id criterion"):
        app_code("scalars", select(Patient).where(Patient.id == patient.id))
    assert len(TENANT_SCOPE_VIOLATIONS) == 1
    assert "tenant_scope_probe.py" in TENANT_SCOPE_VIOLATIONS[0]


def test_a_bare_get_by_id_that_reaches_the_database_fails(app, patient, app_code):
    patient_id = patient.id
    db.session.expunge_all()  # not in the identity map: the get sends a SELECT by primary key
    with pytest.raises(TenantScopeError, match="patients"):
        app_code("get", Patient, patient_id)


def test_a_scoped_select_passes(app, patient, app_code):
    found = get_scoped(Patient, patient.id, patient.tenant_id)  # the app's own helper
    assert found.id == patient.id
    rows = app_code("scalars", scoped(Patient, patient.tenant_id)).all()
    assert [p.id for p in rows] == [patient.id]
    assert TENANT_SCOPE_VIOLATIONS == []


def test_a_criterion_under_or_does_not_scope(app, patient, app_code):
    either = select(Patient).where((Patient.tenant_id == patient.tenant_id) | (Patient.id > 0))
    with pytest.raises(TenantScopeError):
        app_code("scalars", either)


def test_a_join_needs_each_tables_clinic_or_a_join_on_the_clinic(app, patient, app_code):
    joined = select(MedicalRecord).join(Patient, Patient.id == MedicalRecord.patient_id)
    with pytest.raises(TenantScopeError, match="medical_records"):
        app_code("scalars", joined.where(Patient.tenant_id == patient.tenant_id))
    on_the_clinic = joined.where(
        Patient.tenant_id == patient.tenant_id, MedicalRecord.tenant_id == Patient.tenant_id
    )
    assert app_code("scalars", on_the_clinic).all() == []


def test_a_subquery_in_the_from_list_is_checked_on_its_own(app, patient, app_code):
    inner = select(Patient.id).subquery()
    counted = select(func.count()).select_from(inner)
    with pytest.raises(TenantScopeError, match="patients"):
        app_code("scalar", counted)
    assert unscoped_tables(select(func.count()).select_from(scoped(Patient, 1).subquery())) == []


def test_opting_out_by_name_passes(app, patient, app_code):
    everyone = select(Patient).execution_options(**ALL_TENANTS)
    assert [p.id for p in app_code("scalars", everyone)] == [patient.id]
    with all_tenants("a sweep of every clinic"):
        assert app_code("scalars", select(Patient)).all()
    patient_id = patient.id
    db.session.expunge_all()
    assert app_code("get", Patient, patient_id, execution_options=ALL_TENANTS) is not None
    assert TENANT_SCOPE_VIOLATIONS == []


def test_the_tests_own_queries_and_relationship_loads_are_not_checked(app, patient, app_code):
    # A test reads whatever it wants to assert on.
    assert db.session.scalars(select(Patient)).all()
    # A lazy load follows a parent that a checked query loaded; a reload of expired columns too.
    contact = EmergencyContact(
        tenant_id=patient.tenant_id, patient_id=patient.id, name="Kim", phone="555-0101"
    )
    db.session.add(contact)
    db.session.commit()
    patient_id, tenant_id = patient.id, patient.tenant_id
    db.session.expunge_all()
    loaded = get_scoped(Patient, patient_id, tenant_id)
    assert [c.name for c in attribute_as_app(loaded, "emergency_contacts")] == ["Kim"]
    db.session.expire(loaded)
    assert attribute_as_app(loaded, "first_name") == "Pat"
    assert TENANT_SCOPE_VIOLATIONS == []


def test_the_check_is_off_without_the_setting(app, patient, app_code):
    app.config["TENANT_SCOPE_CHECK"] = False
    assert app_code("scalars", select(Patient)).all()
