"""The clinical summary that opens a patient's page for clinicians: active problems, allergies, the latest
vital signs, key labs with their flags, the scores and the next follow-up, above the patient's details.

Built on `clinical.clinical_summary` (records, scores, allergies, immunizations; None for a role that sees
no clinical content) and adds only what it does not hold: the problems, vitals and follow-up come from the
records it already read, the key labs from one query, audited as a lab read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..audit.services import Actor, record_event
from ..clock import clinic_today
from ..extensions import db
from ..patients.models import Patient
from ..tenancy import scoped
from .clinical import ClinicalSummary, clinical_summary
from .models import Diagnosis, LabResult, MedicalRecord

# The labs a clinician looks at first, in this order (LOINC): the liver panel, kidney, blood count, sugar.
KEY_LAB_CODES = (
    "1975-2",  # bilirubin
    "6301-6",  # INR
    "1751-7",  # albumin
    "1742-6",  # ALT
    "2160-0",  # creatinine
    "2951-2",  # sodium
    "777-3",  # platelets
    "718-7",  # hemoglobin
    "4548-4",  # HbA1c
    "2093-3",  # cholesterol
)
VITAL_FIELDS = (
    "bp_systolic",
    "pulse",
    "temperature_c",
    "respiratory_rate",
    "spo2",
    "weight_kg",
    "height_cm",
)


@dataclass(frozen=True)
class FollowUp:
    due: date
    record: MedicalRecord
    overdue: bool


@dataclass(frozen=True)
class PatientSummary:
    clinical: ClinicalSummary
    problems: list[Diagnosis]  # one per code, from the newest records first
    vitals: MedicalRecord | None  # the newest record with a vital sign
    key_labs: list[LabResult]  # the latest result of each key test, in KEY_LAB_CODES order
    follow_up: FollowUp | None


def _problems(records: list[MedicalRecord]) -> list[Diagnosis]:
    seen: set[str] = set()
    problems = []
    for record in records:  # newest first
        for diagnosis in record.diagnoses:
            key = (diagnosis.code or diagnosis.name).upper()
            if key not in seen:
                seen.add(key)
                problems.append(diagnosis)
    return problems


def _follow_up(records: list[MedicalRecord], today: date) -> FollowUp | None:
    """The soonest follow-up still to come; without one, the one of the newest record that asks for one."""
    asked = [r for r in records if r.follow_up_required and r.follow_up_date]
    coming = sorted((r for r in asked if r.follow_up_date >= today), key=lambda r: r.follow_up_date)
    if coming:
        return FollowUp(coming[0].follow_up_date, coming[0], overdue=False)
    if asked:
        return FollowUp(asked[0].follow_up_date, asked[0], overdue=True)
    return None


def _key_labs(actor: Actor, patient: Patient) -> list[LabResult]:
    results = db.session.scalars(
        scoped(LabResult, actor.tenant_id)
        .where(LabResult.patient_id == patient.id, LabResult.code.in_(KEY_LAB_CODES))
        .order_by(LabResult.observed_at.desc(), LabResult.id.desc())
    )
    latest: dict[str, LabResult] = {}
    for result in results:
        latest.setdefault(result.code, result)
    return [latest[code] for code in KEY_LAB_CODES if code in latest]


def patient_summary(actor: Actor, patient: Patient, zone: str | None) -> PatientSummary | None:
    """The clinician's summary of the patient, or None for a role that sees no clinical content.

    The key labs are read with a `lab.view` event in the same transaction (the record list is audited by
    `clinical_summary`); `zone` is the clinic's, for what "still to come" means.
    """
    clinical = clinical_summary(actor, patient)
    if clinical is None:
        return None
    records = list(clinical.records.records)
    key_labs = _key_labs(actor, patient)
    if key_labs:
        record_event(actor, "lab.view", resource_type="lab_result", patient_id=patient.id)
        db.session.commit()
    vitals = next((r for r in records if any(getattr(r, name) is not None for name in VITAL_FIELDS)), None)
    return PatientSummary(
        clinical=clinical,
        problems=_problems(records),
        vitals=vitals,
        key_labs=key_labs,
        follow_up=_follow_up(records, clinic_today(zone)),
    )
