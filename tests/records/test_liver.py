"""Liver scores on the patient page come from the latest value of each input: labs, and the latest visit
that assessed ascites and encephalopathy, each with its date; inputs past the clinic's age limit are
marked."""

from __future__ import annotations

from datetime import datetime, timedelta

from healthcrm.clock import utc_to_local, utcnow
from healthcrm.extensions import db
from healthcrm.records.liver import liver_scores
from healthcrm.records.models import FINALIZED, LabResult, MedicalRecord
from healthcrm.records.scores import Assessment
from healthcrm.sharing.content import shared_content
from tests.factories import login, make_patient, make_tenant, make_user
from tests.sharing.factories import SECOND_VISIT, make_share, make_shared_patient


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


# --- each input's latest assessed value, with its date, and the clinic's age limit -------------------------


def _visit(patient, doctor, when: datetime, **assessment) -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=when,
        chief_complaint="Liver review",
        **assessment,
    )
    db.session.add(record)
    return record


def _child_pugh_patient(days_ago_labs: int = 5, days_ago_assessed: int = 30, **tenant_fields):
    tenant = make_tenant(**tenant_fields)
    doctor = make_user(tenant, "doctor")
    patient = make_patient(tenant, sex="female")
    now = utcnow().replace(microsecond=0)
    for code, value, unit in (("1975-2", 2.5, "mg/dL"), ("1751-7", 3.0, "g/dL"), ("6301-6", 1.5, "")):
        _lab(patient, code, value, unit, now - timedelta(days=days_ago_labs))
    assessed = _visit(
        patient, doctor, now - timedelta(days=days_ago_assessed), ascites="slight", encephalopathy="grade_1_2"
    )
    # The newest visit did not assess either ("Not assessed" on the form).
    _visit(patient, doctor, now - timedelta(days=2))
    db.session.commit()
    return tenant, doctor, patient, assessed


def test_a_not_assessed_visit_keeps_the_previous_assessment_with_its_date(app):
    _, _, patient, assessed = _child_pugh_patient()
    child_pugh = {score.name: score for score in liver_scores(patient)}["Child-Pugh"]
    # bilirubin 2.5 → 2, albumin 3.0 → 2, INR 1.5 → 1, slight ascites → 2, grade 1–2 → 2: 9, class B.
    assert (child_pugh.value, child_pugh.category) == (9, "B")
    used = dict(child_pugh.inputs)
    assert used["ascites"] == Assessment("slight", assessed.visit_at)
    assert used["encephalopathy"] == Assessment("grade_1_2", assessed.visit_at)
    assert child_pugh.stale == [] and not child_pugh.missing


def test_inputs_older_than_the_clinics_limit_are_used_and_named_as_old(app):
    _, _, patient, _ = _child_pugh_patient(days_ago_labs=100, days_ago_assessed=120)
    scores = {score.name: score for score in liver_scores(patient)}
    child_pugh = scores["Child-Pugh"]
    assert child_pugh.value == 9
    assert child_pugh.stale == ["bilirubin", "albumin", "INR", "ascites", "encephalopathy"]
    assert any(
        note.startswith("Older than 90 days: ") and "ascites 120 days" in note for note in child_pugh.notes
    )
    assert "bilirubin" in scores["MELD"].stale

    # A clinic that allows older inputs does not call them old.
    _, _, patient, _ = _child_pugh_patient(
        days_ago_labs=100, days_ago_assessed=120, score_input_max_age_days=180
    )
    assert {score.name: score for score in liver_scores(patient)}["Child-Pugh"].stale == []


def test_the_patient_page_shows_the_assessment_date_and_marks_old_inputs(client):
    tenant, doctor, patient, assessed = _child_pugh_patient(days_ago_labs=5, days_ago_assessed=120)
    login(client, doctor.email)
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Not enough data" not in page.split("Child-Pugh", 1)[1].split("</div>", 1)[0]
    day = utc_to_local(assessed.visit_at, tenant.timezone).strftime("%d %b %Y")
    assert f'Ascites: slight <span class="muted">({day})</span>' in page
    assert '<li class="stale">Ascites' in page and "ascites 120 days" in page


def test_the_provider_share_uses_the_latest_shared_assessment_of_each_input(app):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    patient = make_shared_patient(tenant, doctor)  # the second visit assessed slight ascites
    latest = _visit(patient, doctor, SECOND_VISIT + timedelta(days=20))
    latest.status, latest.finalized_at, latest.finalized_by_id = FINALIZED, latest.visit_at, doctor.id
    db.session.commit()
    content = shared_content(make_share(patient))
    child_pugh = {score.name: score for score in content.scores}["Child-Pugh"]
    assert dict(child_pugh.inputs)["ascites"] == Assessment("slight", SECOND_VISIT)
