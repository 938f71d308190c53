"""`flask demo`'s medical records: two years of visits, labs that make liver scores mean something."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import delete, func, select

from healthcrm.accounts.models import Tenant
from healthcrm.audit.models import AuditEvent
from healthcrm.clock import utcnow
from healthcrm.demo import storage_cost as demo_storage
from healthcrm.demo.data import DemoError, seed_demo
from healthcrm.demo.records import CLINIC_LAST_VISIT_HOUR, CLINIC_OPENS_HOUR, HISTORY_DAYS, _visit_times
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.records.icd10 import find_code
from healthcrm.records.liver import liver_scores
from healthcrm.records.models import (
    DRAFT,
    FINALIZED,
    Allergy,
    Diagnosis,
    Icd10Code,
    Immunization,
    LabResult,
    MedicalRecord,
    Prescription,
)


def _tenant(slug: str) -> Tenant:
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))


def _records(tenant: Tenant) -> list[MedicalRecord]:
    return list(db.session.scalars(select(MedicalRecord).where(MedicalRecord.tenant_id == tenant.id)))


def _counts() -> dict[str, int]:
    models = (MedicalRecord, Diagnosis, Prescription, LabResult, Allergy, Immunization)
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model)) for model in models}


@pytest.mark.demo_seeded
def test_each_clinic_gets_two_years_of_visits_in_clinic_hours(app):
    seed_demo(None)

    now = utcnow()
    for slug in ("riverside", "lakeside"):
        tenant = _tenant(slug)
        records = _records(tenant)
        assert 250 <= len(records) <= 350
        visits = [r.visit_at for r in records]
        assert min(visits) >= now - timedelta(days=731) and max(visits) <= now
        assert max(visits) - min(visits) > timedelta(days=600)
        zone = ZoneInfo(tenant.timezone)
        for record in records:
            local = record.visit_at.replace(tzinfo=UTC).astimezone(zone)
            assert 8 <= local.hour < 17 and local.weekday() < 5
            assert (
                record.chief_complaint and record.treatment_plan and record.bp_systolic and record.weight_kg
            )
            assert record.patient.tenant_id == tenant.id and record.doctor.tenant_id == tenant.id
        # The archived report to try restores with (healthcrm/demo/archived_files.py) and the storage
        # dashboard's files of several ages and classes (healthcrm/demo/storage_cost.py).
        assert sum(record.attachment_count for record in records) == 1 + demo_storage.FILES


@pytest.mark.demo_seeded
def test_most_records_are_finalized_and_a_few_recent_ones_are_drafts(app):
    seed_demo(None)

    for slug in ("riverside", "lakeside"):
        records = _records(_tenant(slug))
        drafts = [r for r in records if r.status == DRAFT]
        finalized = [r for r in records if r.status == FINALIZED]
        assert len(drafts) + len(finalized) == len(records)
        assert 0 < len(drafts) <= 25
        assert all(r.visit_at > utcnow() - timedelta(days=8) for r in drafts)
        assert all(r.finalized_at is None and r.finalized_by_id is None for r in drafts)
        assert all(r.finalized_at >= r.visit_at and r.finalized_by_id == r.doctor_id for r in finalized)
        assert any(r.prescriptions for r in records)
        assert any(r.follow_up_required and r.follow_up_date for r in records)


@pytest.mark.demo_seeded
def test_diagnoses_are_listed_icd10_codes_with_one_primary(app):
    seed_demo(None)

    for slug, expected in (
        ("riverside", {"I10", "E11.9", "J06.9"}),
        ("lakeside", {"K70.31", "K74.60", "B18.2"}),
    ):
        records = _records(_tenant(slug))
        for record in records:
            assert 1 <= len(record.diagnoses) <= 3
            assert sum(d.is_primary for d in record.diagnoses) == 1
            for diagnosis in record.diagnoses:
                listed = find_code(diagnosis.code)
                assert listed is not None, diagnosis.code
                assert (diagnosis.code, diagnosis.name) == (listed.display_code, listed.name)
        used = {d.code for record in records for d in record.diagnoses}
        assert expected <= used


@pytest.mark.demo_seeded
def test_lab_flags_follow_the_reference_ranges(app):
    seed_demo(None)

    labs = db.session.scalars(select(LabResult)).all()
    assert labs
    for lab in labs:
        assert lab.value_numeric is not None and lab.unit and lab.name
        if lab.ref_low is not None and lab.value_numeric < lab.ref_low:
            assert lab.flag == "L"
        elif lab.ref_high is not None and lab.value_numeric > lab.ref_high:
            assert lab.flag == "H"
        else:
            assert lab.flag == "N"
        assert lab.record.patient_id == lab.patient_id and lab.observed_at <= lab.record.visit_at
    codes_by_clinic = {
        slug: Counter(lab.code for lab in labs if lab.tenant_id == _tenant(slug).id)
        for slug in ("riverside", "lakeside")
    }
    assert codes_by_clinic["riverside"]["4548-4"] > 0 and codes_by_clinic["riverside"]["2093-3"] > 0
    assert all(
        codes_by_clinic["lakeside"][code] > 50 for code in ("1975-2", "6301-6", "2160-0", "2951-2", "1751-7")
    )


@pytest.mark.demo_seeded
def test_lakeside_has_sick_liver_patients_with_meaningful_scores(app):
    seed_demo(None)

    lakeside = _tenant("lakeside")
    patients = db.session.scalars(select(Patient).where(Patient.tenant_id == lakeside.id)).all()
    scores = [{score.name: score for score in liver_scores(patient)} for patient in patients]
    scored = [s for s in scores if s["MELD 3.0"].value is not None]
    assert 8 <= len(scored) <= 12
    assert max(s["MELD 3.0"].value for s in scored) >= 15
    assert all(s["Child-Pugh"].category in {"A", "B", "C"} for s in scored)
    assert "C" in {s["Child-Pugh"].category for s in scored}


@pytest.mark.demo_seeded
def test_some_patients_have_allergies_and_immunizations(app):
    seed_demo(None)

    for slug in ("riverside", "lakeside"):
        tenant = _tenant(slug)
        allergies = db.session.scalars(select(Allergy).where(Allergy.tenant_id == tenant.id)).all()
        shots = db.session.scalars(select(Immunization).where(Immunization.tenant_id == tenant.id)).all()
        assert 5 <= len(allergies) <= 40
        assert len(shots) >= 20 and all(shot.lot and shot.given_on <= utcnow().date() for shot in shots)
        assert any(shot.vaccine.startswith("Influenza") for shot in shots)


@pytest.mark.demo_seeded
def test_records_are_seeded_once(app):
    seed_demo(None)
    before = _counts()

    seed_demo(None)

    assert _counts() == before
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "demo.records_seeded")).all()
    assert sorted(e.tenant_id for e in events) == sorted([_tenant("riverside").id, _tenant("lakeside").id])


def test_without_the_code_list_nothing_is_created(app):
    # Not committed: seed_demo's rollback brings the codes back for the other tests.
    db.session.execute(delete(Icd10Code))

    with pytest.raises(DemoError, match="flask icd10 load"):
        seed_demo(None)

    assert db.session.scalar(select(func.count()).select_from(Tenant)) == 0
    assert db.session.scalar(select(func.count()).select_from(Icd10Code)) > 0


def test_each_demo_clinic_ships_four_templates(app):
    from healthcrm.demo.data import seed_demo
    from healthcrm.records.models import RecordTemplate

    seed_demo("demo-password-1")
    names = sorted(t.name for t in db.session.scalars(select(RecordTemplate)))
    assert names == sorted(["General visit", "Hepatology follow-up", "Vaccination", "Lab review"] * 2)
    hepatology = db.session.scalars(
        select(RecordTemplate).where(RecordTemplate.name == "Hepatology follow-up")
    ).first()
    assert hepatology.current.default_diagnoses[0]["code"] == "K70.31"
    assert "assessment" in hepatology.current.sections


@pytest.mark.demo_seeded
def test_demo_records_are_found_by_the_search(app):
    seed_demo(None)

    for record in _records(_tenant("lakeside"))[:25]:
        patient = record.patient
        assert patient.last_name.lower() in record.search_text
        assert patient.mrn.lower() in record.search_text
        for diagnosis in record.diagnoses:
            assert diagnosis.code.replace(".", "").lower() in record.search_text


@pytest.mark.parametrize(
    "now",
    [
        # 2026-12-01: two years back is a Sunday; moving that visit to the Friday before left the window.
        "2026-12-01T21:48:00",
        "2027-03-14T08:30:00",  # US clocks go forward
        "2027-10-31T00:30:00",  # EU clocks go back
        "2028-02-29T12:00:00",
        "2027-01-02T05:30:00",  # Saturday, 23:30 on 1 January in Chicago
    ],
)
def test_visit_times_stay_in_the_two_year_window_on_weekdays_in_clinic_hours(now):
    at = datetime.fromisoformat(now)
    for zone_name in ("America/Chicago", "Europe/Berlin", "Pacific/Auckland"):
        zone = ZoneInfo(zone_name)
        for seed in range(200):
            rng = random.Random(seed)
            patient = SimpleNamespace(created_at=at - timedelta(days=HISTORY_DAYS + 5), care_stage="active")
            plan = SimpleNamespace(patient=patient, visits=6, severity=None if seed % 2 else 0.5)
            for visit_at in _visit_times(plan, at, zone, rng):
                assert at - timedelta(days=HISTORY_DAYS) <= visit_at <= at
                local = visit_at.replace(tzinfo=UTC).astimezone(zone)
                assert local.weekday() < 5
                assert CLINIC_OPENS_HOUR <= local.hour <= CLINIC_LAST_VISIT_HOUR


def test_demo_records_fit_the_window_on_the_day_it_once_failed(app):
    with time_machine.travel(datetime(2026, 12, 1, 21, 48, tzinfo=UTC), tick=False):
        seed_demo(None)
        now = utcnow()
        for slug in ("riverside", "lakeside"):
            visits = [r.visit_at for r in _records(_tenant(slug))]
            assert min(visits) >= now - timedelta(days=731) and max(visits) <= now
