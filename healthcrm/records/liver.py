"""Liver scores for a patient from the latest value of each input: each lab's latest result, and the latest
visit that assessed ascites, and encephalopathy, each with its date (a visit marked "Not assessed" does not
wipe what an earlier one recorded). Inputs older than the clinic's limit are used and named as old."""

from __future__ import annotations

from sqlalchemy import func, select

from ..accounts.models import SCORE_INPUT_MAX_AGE_DAYS, Tenant
from ..clock import utcnow
from ..extensions import db
from ..patients.models import Patient
from .models import LabResult, MedicalRecord
from .scores import Assessment, LabValue, LiverInputs, ScoreResult, all_scores

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
    newest = (MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
    mine = (MedicalRecord.tenant_id == patient.tenant_id, MedicalRecord.patient_id == patient.id)
    # The latest record (dialysis is "in the past week" of that visit), and the latest that assessed each.
    latest = [
        db.session.scalar(select(MedicalRecord).where(*mine, *extra).order_by(*newest).limit(1))
        for extra in ((), (MedicalRecord.ascites.is_not(None),), (MedicalRecord.encephalopathy.is_not(None),))
    ]
    return scores_from(patient, labs, [record for record in latest if record is not None])


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
    patient: Patient, labs: dict[str, LabResult], records: list[MedicalRecord]
) -> list[ScoreResult]:
    """The scores from these input labs (by LOINC code) and these records (any order): dialysis from the
    newest record, ascites and encephalopathy each from the newest record that assessed it."""
    by_time = sorted(records, key=lambda record: (record.visit_at, record.id), reverse=True)
    newest = by_time[0] if by_time else None
    tenant = db.session.get(Tenant, patient.tenant_id)
    inputs = LiverInputs(
        bilirubin_mg_dl=_value(labs.get(BILIRUBIN)),
        inr=_value(labs.get(INR)),
        creatinine_mg_dl=_value(labs.get(CREATININE)),
        sodium_mmol_l=_value(labs.get(SODIUM)),
        albumin_g_dl=_value(labs.get(ALBUMIN)),
        dialysis_twice_in_week=bool(newest and newest.on_dialysis),
        female=patient.sex == "female",
        ascites=_assessed(by_time, "ascites"),
        encephalopathy=_assessed(by_time, "encephalopathy"),
        as_of=utcnow(),
        max_age_days=tenant.score_input_max_age_days if tenant else SCORE_INPUT_MAX_AGE_DAYS,
    )
    return all_scores(inputs)


def _assessed(records: list[MedicalRecord], name: str) -> Assessment | None:
    """The newest of `records` (newest first) that assessed `name`, as an Assessment with its visit time."""
    found = next((record for record in records if getattr(record, name)), None)
    return Assessment(getattr(found, name), found.visit_at) if found else None
