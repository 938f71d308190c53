"""The symptom log: entries in the clinic's zone, never in the future, every fault at its field; the chart
data and the table; audited; only the patient's own."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.selfcare.models import SymptomEntry
from healthcrm.tenant_scope import all_tenants
from tests.portal.selfcare_data import make_clinic, sign_in

NOON_UTC = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)  # 12:00 in Chicago (the test clinics' zone)


def _entries():
    with all_tenants("test"):
        return list(db.session.scalars(select(SymptomEntry).order_by(SymptomEntry.id)))


@time_machine.travel(NOON_UTC, tick=False)
def test_two_symptoms_logged_in_the_clinic_zone_and_charted(app, client):
    clinic = make_clinic()
    sign_in(client, clinic.user)
    page = client.get("/portal/symptoms")
    assert page.status_code == 200 and 'value="2026-12-02T12:00"' in page.text
    ok = client.post(
        "/portal/symptoms", data={"symptom": "pain", "severity": "6", "occurred_at": "2026-12-02T08:30"}
    )
    assert ok.status_code == 303
    client.post(
        "/portal/symptoms",
        data={"symptom": "other", "other_name": "Cramps", "severity": "3", "notes": "after lunch"},
    )
    client.post(
        "/portal/symptoms", data={"symptom": "pain", "severity": "4", "occurred_at": "2026-12-02T11:00"}
    )
    entries = _entries()
    assert [e.severity for e in entries] == [6, 3, 4]
    assert entries[0].occurred_at == datetime(2026, 12, 2, 14, 30)  # 08:30 Chicago in UTC
    page = client.get("/portal/symptoms")
    assert "Cramps" in page.text and 'id="lab-series"' in page.text and "lab-chart-symptom-" in page.text
    with all_tenants("test"):
        assert (
            db.session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "symptom.create")
            )
            == 3
        )


@time_machine.travel(NOON_UTC, tick=False)
def test_bad_entries_say_why_at_each_field_and_save_nothing(app, client):
    clinic = make_clinic()
    sign_in(client, clinic.user)
    response = client.post(
        "/portal/symptoms", data={"symptom": "other", "severity": "11", "occurred_at": "2026-12-03T09:00"}
    )
    assert response.status_code == 422
    assert "Say what the symptom is" in response.text
    assert "from 0 (not at all) to 10" in response.text
    assert "cannot be in the future" in response.text
    assert _entries() == []


def test_the_patient_id_comes_from_the_session(app, client):
    clinic = make_clinic()
    other = make_clinic("Other")
    sign_in(client, clinic.user)
    client.post("/portal/symptoms", data={"symptom": "pain", "severity": "2", "patient_id": other.patient.id})
    assert [e.patient_id for e in _entries()] == [clinic.patient.id]


def test_staff_see_the_chart_and_table_on_the_self_care_page(app, client):
    clinic = make_clinic()
    sign_in(client, clinic.user)
    client.post("/portal/symptoms", data={"symptom": "fatigue", "severity": "5"})
    client.get("/logout")
    staff = app.test_client()
    sign_in(staff, clinic.coach)
    page = staff.get(f"/care/patients/{clinic.patient.id}/self-care")
    assert page.status_code == 200 and "Tiredness" in page.text
    fragment = staff.get(f"/care/patients/{clinic.patient.id}/self-care", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "Medication adherence" in fragment.text
    patient_page = staff.get(f"/patients/{clinic.patient.id}")
    assert f"/care/patients/{clinic.patient.id}/self-care" in patient_page.text
    other = make_clinic("Other")
    assert staff.get(f"/care/patients/{other.patient.id}/self-care").status_code == 404
