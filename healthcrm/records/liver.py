"""Liver scores for a patient from their latest labs and latest recorded assessment."""

from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..patients.models import Patient
from .models import LabResult, MedicalRecord
from .scores import LabValue, LiverInputs, ScoreResult, all_scores

# LOINC codes of the inputs.
BILIRUBIN = "1975-2"
INR = "6301-6"
CREATININE = "2160-0"
SODIUM = "2951-2"
ALBUMIN = "1751-7"
INPUT_CODES = (BILIRUBIN, INR, CREATININE, SODIUM, ALBUMIN)


def _latest_labs(tenant_id: int, patient_id: int) -> dict[str, LabResult]:
    """The newest numeric result of each input test, in one query."""
    newest = (
        select(LabResult.code, func.max(LabResult.observed_at).label("observed_at"))
        .where(
            LabResult.tenant_id == tenant_id,
            LabResult.patient_id == patient_id,
            LabResult.code.in_(INPUT_CODES),
            LabResult.value_numeric.is_not(None),
        )
        .group_by(LabResult.code)
        .subquery()
    )
    rows = db.session.scalars(
        select(LabResult)
        .join(newest, (LabResult.code == newest.c.code) & (LabResult.observed_at == newest.c.observed_at))
        .where(LabResult.tenant_id == tenant_id, LabResult.patient_id == patient_id)
        .order_by(LabResult.id)
    )
    return {row.code: row for row in rows}


def _value(row: LabResult | None) -> LabValue | None:
    if row is None or row.value_numeric is None:
        return None
    return LabValue(row.value_numeric, row.unit or "", row.observed_at)


def liver_scores(patient: Patient) -> list[ScoreResult]:
    """MELD, MELD-Na, MELD 3.0 and Child-Pugh, each with the inputs (and their dates) it used.

    The caller has already read (and audited) the patient."""
    labs = _latest_labs(patient.tenant_id, patient.id)
    latest_record = db.session.scalar(
        select(MedicalRecord)
        .where(MedicalRecord.tenant_id == patient.tenant_id, MedicalRecord.patient_id == patient.id)
        .order_by(MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
        .limit(1)
    )
    return scores_from(patient, labs, latest_record)


def latest_inputs(labs: list[LabResult]) -> dict[str, LabResult]:
    """The newest numeric result of each input test among `labs` (a share's labs, say)."""
    latest: dict[str, LabResult] = {}
    for lab in labs:
        if lab.code in INPUT_CODES and lab.value_numeric is not None:
            known = latest.get(lab.code)
            if known is None or (lab.observed_at, lab.id) > (known.observed_at, known.id):
                latest[lab.code] = lab
    return latest


def scores_from(
    patient: Patient, labs: dict[str, LabResult], latest_record: MedicalRecord | None
) -> list[ScoreResult]:
    """The scores from these input labs (by LOINC code) and this record's assessment."""
    inputs = LiverInputs(
        bilirubin_mg_dl=_value(labs.get(BILIRUBIN)),
        inr=_value(labs.get(INR)),
        creatinine_mg_dl=_value(labs.get(CREATININE)),
        sodium_mmol_l=_value(labs.get(SODIUM)),
        albumin_g_dl=_value(labs.get(ALBUMIN)),
        dialysis_twice_in_week=bool(latest_record and latest_record.on_dialysis),
        female=patient.sex == "female",
        ascites=latest_record.ascites if latest_record else None,
        encephalopathy=latest_record.encephalopathy if latest_record else None,
    )
    return all_scores(inputs)
