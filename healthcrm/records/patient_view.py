"""What a patient may see of their records: the one answer the portal's pages and the shares a patient makes
(sharing/content.py) both read, so a held result or a hidden note reaches no page, fragment, PDF or share.

The rule:
- finalized records only (a draft is the clinician's work in progress);
- each record's summary for the patient; its clinical notes, diagnosis notes and addenda only when a
  clinician marked the record's notes visible (`notes_visible_to_patient`): an addendum corrects the
  clinical notes and is written for clinicians, so it follows them;
- results unless held (`LabResult.is_held`: before the hold's end date, a clinic date, and not released
  early); results are released at once by default, whatever the record's status (the information-blocking
  rule is about results, not visit notes);
- prescriptions of finalized records, current or past;
- allergies, immunizations, and the problem list (the diagnoses of finalized records, one per code).

Every function that reads for the patient is audited (`portal.*` actions); the share's own view logs itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import selectinload

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import clinic_today, to_clinic_time
from ..errors import NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..tenancy import get_scoped, note_other_clinic
from .flowsheet import key_of
from .labs import LabOverview, LabTest, group_by_test
from .models import (
    FINALIZED,
    ROUTES,
    Addendum,
    Allergy,
    Diagnosis,
    Immunization,
    LabResult,
    MedicalRecord,
    Prescription,
)
from .services import RecordError

ABOVE = "above the usual range"
BELOW = "below the usual range"
WITHIN = "within the usual range"
# "30 days", "2 weeks", "3 months", "1 year": how long a prescription runs from its visit.
_DURATION = re.compile(r"(\d{1,3})\s*(day|week|month|year)s?\b", re.IGNORECASE)
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


# --- the rule -----------------------------------------------------------------------------------------------


def patient_today(tenant_id: int) -> date:
    """The clinic's day: a hold ends on a clinic date."""
    return clinic_today(db.session.get(Tenant, tenant_id).timezone)


def released(today: date) -> ColumnElement[bool]:
    """The SQL condition of a result the patient may see on the clinic's day `today` (not held)."""
    return or_(
        LabResult.hold_until.is_(None),
        LabResult.hold_until <= today,
        LabResult.hold_released_at.is_not(None),
    )


class PatientDiagnosis:
    """A diagnosis as the patient (or a patient's share) reads it: its note only with the record's notes."""

    def __init__(self, diagnosis: Diagnosis, notes_visible: bool) -> None:
        self._diagnosis = diagnosis
        self.notes = diagnosis.notes if notes_visible else None

    def __getattr__(self, name: str):
        return getattr(self._diagnosis, name)


class PatientRecord:
    """A finalized record as the patient reads it. Reads through to the record, except what the rule hides:
    `notes` and `addenda` (unless the notes are visible), the diagnoses' notes, and held results."""

    def __init__(self, record: MedicalRecord, today: date) -> None:
        if record.status != FINALIZED:
            raise ValueError("only finalized records reach the patient")
        self._record = record
        visible = bool(record.notes_visible_to_patient)
        self.notes_visible = visible
        self.notes = record.notes if visible else None
        self.addenda: list[Addendum] = list(record.addenda) if visible else []
        self.diagnoses = [PatientDiagnosis(d, visible) for d in record.diagnoses]
        self.labs = [lab for lab in record.labs if not lab.is_held(today)]

    def __getattr__(self, name: str):
        return getattr(self._record, name)

    @property
    def primary_diagnosis(self) -> PatientDiagnosis | None:
        return next(
            (d for d in self.diagnoses if d.is_primary), self.diagnoses[0] if self.diagnoses else None
        )


def patient_copy(records: list[MedicalRecord], today: date) -> list[PatientRecord]:
    """The patient's view of finalized records (drafts left out)."""
    return [PatientRecord(r, today) for r in records if r.status == FINALIZED]


def plain_flag(lab: LabResult) -> str | None:
    """Where a value sits against its range, in plain words; None without a number or a range."""
    value = lab.value_numeric
    if value is None or (lab.ref_low is None and lab.ref_high is None):
        return None
    if lab.ref_high is not None and value > lab.ref_high:
        return ABOVE
    if lab.ref_low is not None and value < lab.ref_low:
        return BELOW
    return WITHIN


# --- reading for the patient --------------------------------------------------------------------------------


def _patient(actor: Actor, patient_id: int | None) -> Patient:
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    return patient


def _audit(actor: Actor, action: str, patient: Patient, resource_type: str, resource_id=None) -> None:
    record_event(actor, action, resource_type=resource_type, resource_id=resource_id, patient_id=patient.id)
    db.session.commit()


def _records_query(tenant_id: int, patient_id: int):
    return (
        select(MedicalRecord)
        .where(
            MedicalRecord.tenant_id == tenant_id,
            MedicalRecord.patient_id == patient_id,
            MedicalRecord.status == FINALIZED,
        )
        .options(
            selectinload(MedicalRecord.diagnoses),
            selectinload(MedicalRecord.prescriptions),
            selectinload(MedicalRecord.addenda).selectinload(Addendum.author),
            selectinload(MedicalRecord.labs),
            selectinload(MedicalRecord.doctor),
        )
        .order_by(MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
    )


def patient_records(actor: Actor, patient_id: int) -> list[PatientRecord]:
    """The patient's finalized visits, newest first (audited as one read of the list)."""
    patient = _patient(actor, patient_id)
    today = patient_today(actor.tenant_id)
    records = patient_copy(list(db.session.scalars(_records_query(actor.tenant_id, patient.id))), today)
    _audit(actor, "portal.records_view", patient, "record")
    return records


def patient_record(actor: Actor, patient_id: int, record_id: int) -> PatientRecord:
    """One finalized visit of the patient; NotFound for a draft, another patient's or clinic's record."""
    patient = _patient(actor, patient_id)
    record = db.session.scalar(
        _records_query(actor.tenant_id, patient.id).where(MedicalRecord.id == record_id)
    )
    if record is None:
        note_other_clinic(MedicalRecord, record_id, actor.tenant_id)
        raise NotFound(record_id)
    view = PatientRecord(record, patient_today(actor.tenant_id))
    _audit(actor, "portal.record_view", patient, "record", record.id)
    return view


def released_labs(tenant_id: int, patient_id: int, today: date, record_ids: list[int] | None = None):
    """The patient's results not held on `today`, oldest first (one query). `record_ids` limits them to
    those records' results."""
    query = select(LabResult).where(
        LabResult.tenant_id == tenant_id, LabResult.patient_id == patient_id, released(today)
    )
    if record_ids is not None:
        query = query.where(LabResult.record_id.in_(record_ids or [0]))
    return list(db.session.scalars(query.order_by(LabResult.observed_at, LabResult.id)))


def patient_lab_tests(actor: Actor, patient_id: int) -> list[LabTest]:
    """The patient's released results grouped by test (each oldest first), tests by name."""
    patient = _patient(actor, patient_id)
    tests = group_by_test(released_labs(actor.tenant_id, patient.id, patient_today(actor.tenant_id)))
    _audit(actor, "portal.labs_view", patient, "lab_result")
    return tests


@dataclass(frozen=True)
class PatientLabTest:
    test: LabTest
    index: int  # its place among the patient's tests: the chart's canvas
    series: list[dict]  # the chart's data (records.labs.LabOverview.chart_series), empty below two values


def patient_lab_test(actor: Actor, patient_id: int, key: str) -> PatientLabTest:
    """One test over time (released results only), by `flowsheet.key_of`; NotFound for a test the patient
    has no released result of."""
    patient = _patient(actor, patient_id)
    tests = group_by_test(released_labs(actor.tenant_id, patient.id, patient_today(actor.tenant_id)))
    for index, test in enumerate(tests):
        if key_of(test) == key:
            series = [s for s in LabOverview(patient, tests).chart_series() if s["canvas"] == index]
            _audit(actor, "portal.lab_view", patient, "lab_result", test.latest.id)
            return PatientLabTest(test=test, index=index, series=series)
    raise NotFound(key)


@dataclass(frozen=True)
class Medication:
    prescription: Prescription
    prescribed_on: date  # the visit's clinic date
    ends_on: date | None  # from the duration, when it reads as one ("30 days")
    doctor: str

    @property
    def instructions(self) -> str:
        parts = [ROUTES.get(self.prescription.route, self.prescription.route), self.prescription.frequency]
        if self.prescription.duration:
            parts.append(f"for {self.prescription.duration}")
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class Medications:
    current: list[Medication]
    past: list[Medication]


def _ends_on(start: date, duration: str | None) -> date | None:
    found = _DURATION.search(duration or "")
    if not found:
        return None
    return start + timedelta(days=int(found.group(1)) * _UNIT_DAYS[found.group(2).lower()])


def patient_medications(actor: Actor, patient_id: int) -> Medications:
    """Prescriptions of finalized visits. Current: the latest prescription of each drug, unless its duration
    has run out; every other one is past (replaced by a newer prescription, or finished)."""
    patient = _patient(actor, patient_id)
    tenant = db.session.get(Tenant, actor.tenant_id)
    today = clinic_today(tenant.timezone)
    rows = db.session.execute(
        select(Prescription, MedicalRecord)
        .join(MedicalRecord, MedicalRecord.id == Prescription.record_id)
        .where(
            Prescription.tenant_id == actor.tenant_id,
            MedicalRecord.tenant_id == actor.tenant_id,
            MedicalRecord.patient_id == patient.id,
            MedicalRecord.status == FINALIZED,
        )
        .options(selectinload(MedicalRecord.doctor))
        .order_by(MedicalRecord.visit_at.desc(), Prescription.id)
    ).all()
    current, past, seen = [], [], set()
    for prescription, record in rows:
        start = to_clinic_time(record.visit_at, tenant.timezone).date()
        medication = Medication(
            prescription, start, _ends_on(start, prescription.duration), record.doctor.full_name
        )
        drug = prescription.drug.casefold()
        finished = medication.ends_on is not None and medication.ends_on < today
        (past if drug in seen or finished else current).append(medication)
        seen.add(drug)
    _audit(actor, "portal.medications_view", patient, "prescription")
    return Medications(current=current, past=past)


@dataclass(frozen=True)
class Problem:
    code: str
    name: str
    since: datetime  # the first visit that named it (naive UTC)
    last_seen: datetime


@dataclass(frozen=True)
class HealthSummary:
    allergies: list[Allergy]
    immunizations: list[Immunization]
    problems: list[Problem]


def patient_health(actor: Actor, patient_id: int) -> HealthSummary:
    """Allergies (active first), immunizations (newest first) and the problem list: each code named by a
    finalized visit, once, most recently named first."""
    patient = _patient(actor, patient_id)
    allergies = list(
        db.session.scalars(
            select(Allergy)
            .where(Allergy.tenant_id == actor.tenant_id, Allergy.patient_id == patient.id)
            .order_by(Allergy.status, Allergy.substance)
        )
    )
    immunizations = list(
        db.session.scalars(
            select(Immunization)
            .where(Immunization.tenant_id == actor.tenant_id, Immunization.patient_id == patient.id)
            .order_by(Immunization.given_on.desc())
        )
    )
    rows = db.session.execute(
        select(Diagnosis.code, Diagnosis.name, MedicalRecord.visit_at)
        .join(MedicalRecord, MedicalRecord.id == Diagnosis.record_id)
        .where(
            Diagnosis.tenant_id == actor.tenant_id,
            MedicalRecord.tenant_id == actor.tenant_id,
            MedicalRecord.patient_id == patient.id,
            MedicalRecord.status == FINALIZED,
        )
        .order_by(MedicalRecord.visit_at.desc())
    ).all()
    problems: dict[str, Problem] = {}
    for code, name, visit_at in rows:
        known = problems.get(code)
        problems[code] = Problem(
            code, known.name if known else name, visit_at, known.last_seen if known else visit_at
        )
    _audit(actor, "portal.health_view", patient, "patient", patient.id)
    return HealthSummary(allergies, immunizations, list(problems.values()))


# --- what staff choose to show ------------------------------------------------------------------------------

MAX_SUMMARY = 5000


def set_record_patient_view(
    actor: Actor, record_id: int, patient_summary: str | None, notes_visible: bool
) -> MedicalRecord:
    """Change what the patient reads of a finalized record: its summary and whether its notes show.

    The clinical record stays as it was finalized: the summary is the clinic's words to the patient about
    it, and the visibility is a release setting, so both may change after finalizing (clinicians only,
    audited by field name). A draft's are edited on the record form.
    """
    require(actor, "record.addendum")
    record = get_scoped(MedicalRecord, record_id, actor.tenant_id)
    if record is None:
        raise NotFound(record_id)
    if not record.is_finalized:
        raise RecordError(
            "Edit the draft: its summary for the patient is on the record form.", "patient_summary"
        )
    summary = (patient_summary or "").strip() or None
    if summary is not None and len(summary) > MAX_SUMMARY:
        raise RecordError(f"At most {MAX_SUMMARY} characters.", "patient_summary")
    changed = []
    if record.patient_summary != summary:
        record.patient_summary = summary
        changed.append("patient_summary")
    if bool(record.notes_visible_to_patient) != notes_visible:
        record.notes_visible_to_patient = notes_visible
        changed.append("notes_visible_to_patient")
    if changed:
        record_event(
            actor,
            "record.patient_view_changed",
            resource_type="record",
            resource_id=record.id,
            patient_id=record.patient_id,
            changed_fields=changed,
        )
        db.session.commit()
    return record
