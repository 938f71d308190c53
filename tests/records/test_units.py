"""Vitals in the clinic's units: a US clinic types and reads pounds, inches and °F; records keep SI; the
conversion lives in healthcrm/records/units.py and every page, the provider's share and the PDF use it."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from healthcrm.accounts.models import Tenant
from healthcrm.extensions import db
from healthcrm.records import units
from healthcrm.records.models import MedicalRecord
from healthcrm.sharing.content import shared_content
from healthcrm.sharing.exports import build_pdf
from healthcrm.sharing.watermark import watermark_text
from tests.factories import login, make_patient, make_tenant, make_user
from tests.sharing.factories import make_share, make_shared_patient
from tests.sharing.test_provider import Provider, _link


@pytest.mark.parametrize(
    ("kind", "si", "us_text"),
    [
        ("weight", 70.0, "154.3 lb"),
        ("weight", 71.5, "157.6 lb"),
        ("height", 165.0, "65 in"),
        ("height", 177.8, "70 in"),
        ("temperature", 37.0, "98.6 °F"),
        ("temperature", 36.8, "98.2 °F"),
    ],
)
def test_si_values_read_in_us_units_and_back(kind, si, us_text):
    assert units.vital_text(kind, si, units.US) == us_text
    assert units.vital_text(kind, si, units.METRIC) == f"{si:g} {units.unit(kind, units.METRIC)}"
    typed = float(us_text.split()[0])
    # What is typed has the shown precision (0.1 in is 0.25 cm): back in SI within that.
    assert units.to_si(kind, typed, units.US) == pytest.approx(si, abs=0.2)
    assert units.vital_text(kind, units.to_si(kind, typed, units.US), units.US) == us_text


def test_a_new_us_clinic_starts_with_us_units_others_with_metric(app):
    new_york = Tenant(name="NY", slug="ny-units", timezone="America/New_York")
    berlin = Tenant(name="Berlin", slug="berlin-units", timezone="Europe/Berlin")
    db.session.add_all([new_york, berlin])
    db.session.commit()
    assert (new_york.unit_system, berlin.unit_system) == ("us", "metric")
    assert new_york.score_input_max_age_days == 90


@pytest.fixture
def us_clinic(app):
    tenant = make_tenant("Lakeside Hepatology", timezone="America/New_York", unit_system="us")
    return {"tenant": tenant, "doctor": make_user(tenant, "doctor"), "patient": make_patient(tenant)}


def _form(doctor_id: int, **changes) -> dict:
    return {
        "doctor_id": str(doctor_id),
        "visit_at": "2026-11-20T09:30",
        "chief_complaint": "Weight check",
        "temperature": "98.6",
        "weight": "154.3",
        "height": "70",
        **changes,
    }


def test_a_us_clinic_types_and_reads_pounds_inches_and_fahrenheit(client, us_clinic):
    login(client, us_clinic["doctor"].email)
    url = f"/patients/{us_clinic['patient'].id}/records/new"
    page = client.get(url).get_data(as_text=True)
    for label in ("Weight (lb)", "Height (in)", "Temperature (°F)"):
        assert label in page
    assert "Weight (kg)" not in page and "°C" not in page

    response = client.post(url, data=_form(us_clinic["doctor"].id))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    record = db.session.scalars(select(MedicalRecord)).one()
    assert record.weight_kg == pytest.approx(70.0, abs=0.02)
    assert record.height_cm == pytest.approx(177.8, abs=0.01)
    assert record.temperature_c == pytest.approx(37.0, abs=0.01)
    assert record.bmi == 22.1  # from SI

    shown = client.get(f"/records/{record.id}").get_data(as_text=True)
    assert "154.3 lb" in shown and "70 in" in shown and "98.6 °F" in shown
    assert "70 kg" not in shown and "°C" not in shown

    edit = client.get(f"/records/{record.id}/edit").get_data(as_text=True)
    assert 'name="weight" step="any" type="number" value="154.3"' in edit
    assert 'name="temperature" step="any" type="number" value="98.6"' in edit
    assert 'name="height" step="any" type="number" value="70.0"' in edit


def test_an_implausible_value_is_refused_in_the_clinics_units(client, us_clinic):
    login(client, us_clinic["doctor"].email)
    url = f"/patients/{us_clinic['patient'].id}/records/new"
    response = client.post(url, data=_form(us_clinic["doctor"].id, temperature="37"))  # °C typed by habit
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Temperature must be between 77 °F and 113 °F." in body
    assert db.session.scalar(select(MedicalRecord.id)) is None


def test_the_provider_share_and_the_pdf_read_in_the_clinics_units(client, us_clinic):
    patient = make_shared_patient(us_clinic["tenant"], us_clinic["doctor"])  # visits at 71.5 kg, 165 cm
    share = make_share(patient)
    provider = Provider(client, _link(share))
    provider.start()
    summary = provider.get("/summary").get_data(as_text=True)
    records = provider.get("/records").get_data(as_text=True)
    for page in (summary, records):
        assert "157.6 lb" in page and "65 in" in page
        assert "71.5 kg" not in page
    out = io.BytesIO()
    build_pdf(shared_content(share), watermark_text(share, datetime(2026, 4, 2, 13, 45)), out, lambda _: None)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(out.getvalue())).pages)
    assert "weight 157.6 lb" in text and "height 65 in" in text
    assert "71.5 kg" not in text


def test_admin_changes_the_clinics_clinical_settings(client, us_clinic):
    admin = make_user(us_clinic["tenant"], "admin")
    login(client, admin.email)
    page = client.get("/clinic/clinical-settings").get_data(as_text=True)
    assert 'value="us" selected' in page or 'selected value="us"' in page
    bad = client.post(
        "/clinic/clinical-settings", data={"unit_system": "imperial", "score_input_max_age_days": "0"}
    )
    assert bad.status_code == 422
    db.session.expire_all()
    assert us_clinic["tenant"].unit_system == "us"
    ok = client.post(
        "/clinic/clinical-settings", data={"unit_system": "metric", "score_input_max_age_days": "30"}
    )
    assert ok.status_code == 303
    db.session.expire_all()
    tenant = db.session.get(Tenant, us_clinic["tenant"].id)
    assert (tenant.unit_system, tenant.score_input_max_age_days) == ("metric", 30)
    # Doctors do not change clinic settings.
    client.post("/logout", data={})
    login(client, us_clinic["doctor"].email)
    assert client.get("/clinic/clinical-settings").status_code in (403, 404)
