"""Liver scores on the patient page come from the latest labs and the latest record's assessment."""

from __future__ import annotations

from datetime import datetime

from healthcrm.extensions import db
from healthcrm.records.liver import liver_scores
from healthcrm.records.models import LabResult
from tests.factories import login, make_patient, make_tenant, make_user


def _lab(patient, code: str, value: float, unit: str, when: datetime) -> None:
    db.session.add(
        LabResult(
            tenant_id=patient.tenant_id,
            patient_id=patient.id,
            code=code,
            name=code,
            value_numeric=value,
            unit=unit,
            observed_at=when,
        )
    )


def test_scores_use_the_latest_value_of_each_lab(app, client):
    tenant = make_tenant()
    patient = make_patient(tenant, sex="male")
    old, new = datetime(2026, 1, 5, 9), datetime(2026, 11, 1, 9)
    for code, old_value, new_value, unit in [
        ("1975-2", 1.0, 2.0, "mg/dL"),
        ("6301-6", 1.0, 1.5, ""),
        ("2160-0", 0.9, 1.2, "mg/dL"),
        ("2951-2", 140, 130, "mmol/L"),
        ("1751-7", 4.2, 3.0, "g/dL"),
    ]:
        _lab(patient, code, old_value, unit, old)
        _lab(patient, code, new_value, unit, new)
    db.session.commit()
    scores = {score.name: score for score in liver_scores(patient)}
    # The worked example of MELD 3.0 (Kim et al. 2021): bilirubin 2.0, INR 1.5, creatinine 1.2, Na 130,
    # albumin 3.0, male → 20.211 → 20.
    assert scores["MELD 3.0"].value == 20
    assert scores["MELD"].value == 15
    assert scores["Child-Pugh"].value is None and "ascites" in scores["Child-Pugh"].missing
    login(client, make_user(tenant, "doctor").email)
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "MELD 3.0" in page and "01 Nov 2026" in page


def test_another_clinics_labs_are_never_used(app):
    tenant, other = make_tenant(), make_tenant()
    patient = make_patient(tenant)
    db.session.add(
        LabResult(
            tenant_id=other.id,
            patient_id=patient.id,
            code="1975-2",
            name="Bilirubin",
            value_numeric=9.0,
            unit="mg/dL",
            observed_at=datetime(2026, 11, 1),
        )
    )
    db.session.commit()
    scores = {score.name: score for score in liver_scores(patient)}
    assert "bilirubin" in scores["MELD"].missing
