"""Builders for sharing tests: a patient with something to share, and a share link of them."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

from healthcrm.accounts.models import Tenant, User
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.records.liver import ALBUMIN, BILIRUBIN, CREATININE, INR, SODIUM
from healthcrm.records.models import (
    FINALIZED,
    Addendum,
    Allergy,
    Diagnosis,
    Immunization,
    LabResult,
    MedicalRecord,
    Prescription,
)
from healthcrm.sharing.models import SCOPE_ALL, ShareLink
from tests.factories import make_patient

_seq = itertools.count(1)
FIRST_VISIT = datetime(2026, 1, 12, 15, 30)  # naive UTC, as stored
SECOND_VISIT = datetime(2026, 3, 9, 16, 0)
# (code, name, unit, low, high, first value, second value): the liver panel plus ALT, at both visits.
LABS = (
    (BILIRUBIN, "Bilirubin, total", "mg/dL", 0.1, 1.2, 1.4, 2.1),
    (INR, "INR", "", 0.8, 1.2, 1.3, 1.6),
    (CREATININE, "Creatinine", "mg/dL", 0.6, 1.1, 0.9, 1.3),
    (SODIUM, "Sodium", "mmol/L", 135, 145, 136, 131),
    (ALBUMIN, "Albumin", "g/dL", 3.5, 5.0, 3.4, 2.9),
    ("1742-6", "ALT", "U/L", 7, 56, 48, 92),
)


def make_shared_patient(tenant: Tenant, doctor: User) -> Patient:
    """A patient with two finalized visits (diagnoses, vitals, a prescription; an addendum on the second),
    a draft visit, two results of each liver lab and ALT, an allergy and an immunization."""
    patient = make_patient(
        tenant, first_name="Maria", last_name=f"Lopez{next(_seq)}", date_of_birth=date(1968, 5, 4)
    )
    first = _record(patient, doctor, FIRST_VISIT, "Fatigue and itching")
    second = _record(patient, doctor, SECOND_VISIT, "Follow-up of liver tests", ascites="slight")
    _record(patient, doctor, SECOND_VISIT + timedelta(days=1), "Draft, never shared", status="draft")
    db.session.add_all(
        [
            Diagnosis(
                tenant_id=tenant.id,
                record=first,
                code="K74.60",
                name="Unspecified cirrhosis of liver",
                is_primary=True,
            ),
            Diagnosis(tenant_id=tenant.id, record=second, code="K76.0", name="Fatty (change of) liver, NEC"),
            Prescription(
                tenant_id=tenant.id,
                record=second,
                drug="Spironolactone",
                dose="50 mg",
                route="oral",
                frequency="once daily",
            ),
            Addendum(
                tenant_id=tenant.id,
                record=second,
                author_id=doctor.id,
                text="INR repeated: 1.6 confirmed.",
                created_at=SECOND_VISIT + timedelta(hours=2),
            ),
            Allergy(
                tenant_id=tenant.id,
                patient_id=patient.id,
                substance="Penicillin",
                reaction="Hives",
                severity="moderate",
            ),
            Immunization(
                tenant_id=tenant.id,
                patient_id=patient.id,
                vaccine="Hepatitis B",
                given_on=date(2025, 10, 2),
                dose_number=3,
                lot="HB-2291",
            ),
        ]
    )
    for code, name, unit, low, high, *values in LABS:
        for record, value in zip((first, second), values, strict=True):
            add_lab(
                patient,
                code,
                name,
                value,
                unit,
                record.visit_at - timedelta(hours=1),
                low,
                high,
                record=record,
            )
    db.session.commit()
    return patient


def add_lab(
    patient: Patient,
    code: str,
    name: str,
    value: float | None,
    unit: str,
    observed_at: datetime,
    ref_low: float | None = None,
    ref_high: float | None = None,
    *,
    record: MedicalRecord | None = None,
    value_text: str | None = None,
) -> LabResult:
    """A lab result flagged H, L or N from its range (not committed)."""
    flag = None
    if value is not None and (ref_low is not None or ref_high is not None):
        flag = (
            "H"
            if ref_high is not None and value > ref_high
            else "L"
            if ref_low is not None and value < ref_low
            else "N"
        )
    lab = LabResult(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        record=record,
        code=code,
        name=name,
        value_numeric=value,
        value_text=value_text,
        unit=unit,
        ref_low=ref_low,
        ref_high=ref_high,
        flag=flag,
        observed_at=observed_at,
    )
    db.session.add(lab)
    return lab


def make_share(patient: Patient, **fields) -> ShareLink:
    """A share of everything (unless `fields` say otherwise), valid for 30 days from now."""
    values = {
        "recipient_name": "Dr Grace Hopper",
        "recipient_email": "grace@hospital.example",
        "scope": SCOPE_ALL,
        "expires_at": utcnow() + timedelta(days=30),
        # Before the second visit's addendum: that record reads "amended after sharing".
        "created_at": SECOND_VISIT + timedelta(hours=1),
    }
    values.update(fields)
    share = ShareLink(tenant_id=patient.tenant_id, patient_id=patient.id, **values)
    db.session.add(share)
    db.session.commit()
    return share


def _record(
    patient: Patient, doctor: User, visit_at: datetime, complaint: str, *, status: str = FINALIZED, **fields
) -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=visit_at,
        chief_complaint=complaint,
        bp_systolic=128,
        bp_diastolic=82,
        pulse=76,
        weight_kg=71.5,
        height_cm=165,
        status=status,
        finalized_at=visit_at + timedelta(hours=1) if status == FINALIZED else None,
        finalized_by_id=doctor.id if status == FINALIZED else None,
        **fields,
    )
    db.session.add(record)
    db.session.flush()
    return record
