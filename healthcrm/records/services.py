"""Medical records: write, find, finalize and correct them. Every read and change is audited.

Who may do what is decided here too (views also declare it), so jobs and CLI commands cannot bypass it:
front desk sees no clinical content, nurses draft and edit drafts, doctors and admins do everything,
coaches read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import selectinload

from ..accounts.models import ADMIN, DOCTOR, Tenant, User
from ..audit.labels import action_label
from ..audit.models import AuditEvent
from ..audit.services import Actor, record_event
from ..clock import clinic_day_end, clinic_day_start, clinic_today, utcnow
from ..errors import DomainError
from ..errors import NotAllowed as NotAllowed  # the one NotAllowed; older code imports it from here
from ..extensions import db
from ..paging import PageWindow
from ..patients.models import Patient
from ..permissions import require, roles_for
from ..portal import events
from ..tenancy import get_scoped, scoped
from . import units
from .icd10 import find_code
from .labs import read_lab_rows, stage_lab_results
from .models import (
    ASCITES,
    DRAFT,
    ENCEPHALOPATHY,
    FINALIZED,
    ROUTES,
    Addendum,
    Diagnosis,
    MedicalRecord,
    Prescription,
    TemplateVersion,
)
from .search import text_matches

# Still read by healthcrm/files (services, uploads) until it asks `permissions` by name itself.
READERS = roles_for("record.read")
WRITERS = roles_for("record.write")
PAGE_SIZE = 20
# The list counts matches up to this many and shows "1,000+" beyond: an exact count of a broad search
# reads every matching record.
RECORD_COUNT_CAP = 1_000
MAX_QUERY_LENGTH = 100
# A visit may be booked ahead, but not beyond a year (a typo in the year, not a plan).
MAX_VISIT_AHEAD = timedelta(days=366)
MAX_DIAGNOSES = 8
MAX_PRESCRIPTIONS = 8
# Plausible ranges: a value outside is a typo, not a patient.
VITAL_RANGES = {
    "bp_systolic": (40, 300, "Systolic pressure"),
    "bp_diastolic": (20, 200, "Diastolic pressure"),
    "pulse": (20, 250, "Pulse"),
    "temperature_c": (25.0, 45.0, "Temperature"),
    "respiratory_rate": (4, 80, "Respiratory rate"),
    "spo2": (50, 100, "SpO2"),
    "weight_kg": (0.3, 500.0, "Weight"),
    "height_cm": (20.0, 260.0, "Height"),
}
# The SI columns the form types in the clinic's units, by units.VITALS kind.
SI_FIELD_KINDS = {quantity.field: kind for kind, quantity in units.VITALS.items()}
SCALAR_FIELDS = (
    "doctor_id", "visit_at", "chief_complaint", "treatment_plan", "notes", *VITAL_RANGES, "ascites",
    "encephalopathy", "on_dialysis", "follow_up_required", "follow_up_date", "patient_summary",
    "notes_visible_to_patient",
)  # fmt: skip


class RecordError(DomainError):
    """Input the user can fix; `field` names the form field."""


@dataclass(frozen=True)
class DiagnosisInput:
    """One diagnosis row. `suggested` rows came from the record's template: they become diagnoses only
    when `confirmed`; until then the draft keeps them as suggestions (`MedicalRecord.suggested_diagnoses`)."""

    code: str
    name: str = ""
    is_primary: bool = False
    notes: str = ""
    suggested: bool = False
    confirmed: bool = False

    @property
    def is_unconfirmed_suggestion(self) -> bool:
        return self.suggested and not self.confirmed


@dataclass(frozen=True)
class PrescriptionInput:
    drug: str
    dose: str = ""
    route: str = ""
    frequency: str = ""
    duration: str = ""
    refills: int = 0


@dataclass
class RecordInput:
    doctor_id: int
    visit_at: datetime
    chief_complaint: str
    treatment_plan: str | None = None
    notes: str | None = None
    # What the patient reads (records/patient_view.py): a plain-language summary; the notes only if marked.
    patient_summary: str | None = None
    notes_visible_to_patient: bool = False
    bp_systolic: int | None = None
    bp_diastolic: int | None = None
    pulse: int | None = None
    temperature_c: float | None = None
    respiratory_rate: int | None = None
    spo2: int | None = None
    weight_kg: float | None = None
    height_cm: float | None = None
    ascites: str | None = None
    encephalopathy: str | None = None
    on_dialysis: bool = False
    follow_up_required: bool = False
    follow_up_date: date | None = None
    diagnoses: list[DiagnosisInput] = field(default_factory=list)
    prescriptions: list[PrescriptionInput] = field(default_factory=list)
    # New lab results entered on the form, as typed (code, name, value, unit, ref_low, ref_high, observed_at).
    lab_rows: list[dict] = field(default_factory=list)
    # The units the clinician typed weight, height and temperature in (the values above are SI): for messages.
    unit_system: str = units.METRIC


@dataclass(frozen=True)
class RecordFilters:
    query: str = ""
    doctor_id: int | None = None
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    has_attachments: bool = False
    follow_up_due: bool = False
    patient_id: int | None = None

    def as_args(self) -> dict:
        """The filters as URL arguments (for links that keep them)."""
        args = {
            "q": self.query, "doctor": self.doctor_id or "", "status": self.status,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "attachments": "1" if self.has_attachments else "",
            "follow_up": "1" if self.follow_up_due else "",
        }  # fmt: skip
        return {key: value for key, value in args.items() if value}


@dataclass(frozen=True)
class RecordPage(PageWindow):
    records: list[MedicalRecord]
    total: int
    page: int
    per_page: int
    filters: RecordFilters
    total_is_capped: bool = False  # more than `total` records match; show "1,000+"


# --- reading -------------------------------------------------------------------------------------------


def _count_up_to(statement: Select, cap: int) -> int:
    """How many rows `statement` finds, counting no further than `cap` + 1 (so "more than cap" shows)."""
    # Counting every match of a broad search reads most of the clinic's records; the list only needs to
    # know whether there are more than it will show as a number.
    limited = statement.with_only_columns(MedicalRecord.id).order_by(None).limit(cap + 1).subquery()
    return db.session.scalar(select(func.count()).select_from(limited)) or 0


def search_records(
    actor: Actor, filters: RecordFilters, page: int = 1, per_page: int = PAGE_SIZE
) -> RecordPage:
    """One page of the clinic's records, newest visit first, with patient, doctor and diagnoses loaded in
    a fixed number of queries (count, page, diagnoses), audited as one list read. The total is counted up
    to RECORD_COUNT_CAP; beyond it `total_is_capped` is set and the total is the cap."""
    require(actor, "record.read")
    # No joins: patient and doctor are required foreign keys, so joining them filters nothing and only
    # makes the count read two more tables.
    statement = scoped(MedicalRecord, actor.tenant_id)
    if filters.query:
        statement = statement.where(*text_matches(filters.query))
    if filters.doctor_id:
        statement = statement.where(MedicalRecord.doctor_id == filters.doctor_id)
    if filters.status in (DRAFT, FINALIZED):
        statement = statement.where(MedicalRecord.status == filters.status)
    # Dates are the clinic's calendar days; visit times are stored in UTC.
    zone = db.session.get(Tenant, actor.tenant_id).timezone
    if filters.date_from:
        statement = statement.where(MedicalRecord.visit_at >= clinic_day_start(filters.date_from, zone))
    if filters.date_to:
        statement = statement.where(MedicalRecord.visit_at < clinic_day_end(filters.date_to, zone))
    if filters.has_attachments:
        statement = statement.where(MedicalRecord.attachment_count > 0)
    if filters.follow_up_due:
        statement = statement.where(
            MedicalRecord.follow_up_required.is_(True), MedicalRecord.follow_up_date <= clinic_today(zone)
        )
    if filters.patient_id:
        statement = statement.where(MedicalRecord.patient_id == filters.patient_id)
    counted = _count_up_to(statement, RECORD_COUNT_CAP)
    total, capped = min(counted, RECORD_COUNT_CAP), counted > RECORD_COUNT_CAP
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    records = list(
        db.session.scalars(
            statement.options(
                selectinload(MedicalRecord.patient),
                selectinload(MedicalRecord.doctor),
                selectinload(MedicalRecord.diagnoses),
            )
            .order_by(MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).unique()
    )
    record_event(actor, "record.list", resource_type="record", patient_id=filters.patient_id)
    db.session.commit()
    return RecordPage(records, total, page, per_page, filters, total_is_capped=capped)


def get_record(actor: Actor, record_id: int, *, audit: bool = True) -> MedicalRecord | None:
    """The clinic's record (None for another clinic's id), audited as a read."""
    require(actor, "record.read")
    record = get_scoped(MedicalRecord, record_id, actor.tenant_id)
    if record is None:
        return None
    if audit:
        record_event(
            actor, "record.view", resource_type="record", resource_id=record.id, patient_id=record.patient_id
        )
        db.session.commit()
    return record


HISTORY_LIMIT = 200


@dataclass(frozen=True)
class HistoryEntry:
    occurred_at: datetime
    who: str
    what: str
    action: str
    fields: list[str]


def record_history(record: MedicalRecord) -> list[HistoryEntry]:
    """The record's own audit events (who viewed or changed it, when), newest first, with people's names
    (one query for the events, one for the names)."""
    events = list(
        db.session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == record.tenant_id,
                AuditEvent.resource_type == "record",
                AuditEvent.resource_id == str(record.id),
            )
            .order_by(AuditEvent.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    user_ids = {event.actor_user_id for event in events if event.actor_user_id}
    names = (
        dict(
            db.session.execute(
                select(User.id, User.full_name).where(
                    User.tenant_id == record.tenant_id, User.id.in_(user_ids)
                )
            ).all()
        )
        if user_ids
        else {}
    )
    return [
        HistoryEntry(
            occurred_at=event.occurred_at,
            who=names.get(event.actor_user_id)
            or (event.actor_role or "system").replace("_", " ").capitalize(),
            what=action_label(event.action),
            action=event.action,
            fields=[name.replace("_", " ") for name in json.loads(event.changed_fields or "[]")],
        )
        for event in events
    ]


def clinic_doctors(tenant_id: int) -> list[User]:
    return list(
        db.session.scalars(
            scoped(User, tenant_id)
            .where(User.role.in_((DOCTOR, ADMIN)), User.active.is_(True))
            .order_by(User.role != DOCTOR, User.full_name)
        )
    )


# --- writing -------------------------------------------------------------------------------------------


def _validate(actor: Actor, data: RecordInput) -> None:

    if not data.chief_complaint.strip():
        raise RecordError("Enter the chief complaint.", "chief_complaint")
    if data.doctor_id not in {doctor.id for doctor in clinic_doctors(actor.tenant_id)}:
        raise RecordError("Choose a doctor of this clinic.", "doctor_id")
    if data.visit_at > utcnow() + MAX_VISIT_AHEAD:
        raise RecordError("The visit date is too far in the future.", "visit_at")
    for name, (low, high, label) in VITAL_RANGES.items():
        value = getattr(data, name)
        if value is not None and not low <= value <= high:
            kind = SI_FIELD_KINDS.get(name)
            if kind is None:
                raise RecordError(f"{label} must be between {low} and {high}.", name)
            # The form's field for a converted vital is named by its kind ("weight", not "weight_kg").
            system = data.unit_system
            raise RecordError(
                f"{label} must be between {units.vital_text(kind, low, system)} and "
                f"{units.vital_text(kind, high, system)}.",
                kind,
            )
    if (data.bp_systolic is None) != (data.bp_diastolic is None):
        raise RecordError("Enter both blood pressure numbers, or neither.", "bp_systolic")
    if data.bp_systolic is not None and data.bp_diastolic >= data.bp_systolic:
        raise RecordError("Diastolic pressure must be lower than systolic.", "bp_diastolic")
    if data.ascites not in (None, *ASCITES):
        raise RecordError("Choose one of the listed options.", "ascites")
    if data.encephalopathy not in (None, *ENCEPHALOPATHY):
        raise RecordError("Choose one of the listed options.", "encephalopathy")
    if data.follow_up_required and data.follow_up_date is None:
        raise RecordError("Enter the follow-up date.", "follow_up_date")
    if len(data.diagnoses) > MAX_DIAGNOSES:
        raise RecordError(f"At most {MAX_DIAGNOSES} diagnoses.", "diagnoses")
    if sum(d.is_primary for d in data.diagnoses if not d.is_unconfirmed_suggestion) > 1:
        raise RecordError("Only one diagnosis can be primary.", "diagnoses")
    for position, diagnosis in enumerate(data.diagnoses, start=1):
        if find_code(diagnosis.code) is None:
            raise RecordError(
                f"Diagnosis {position}: “{diagnosis.code}” is not an ICD-10-CM code.", "diagnoses"
            )
    for position, prescription in enumerate(data.prescriptions, start=1):
        if not (prescription.dose and prescription.frequency):
            raise RecordError(f"Prescription {position}: enter the dose and the frequency.", "prescriptions")
        if prescription.route not in ROUTES:
            raise RecordError(f"Prescription {position}: choose a route.", "prescriptions")
        if not 0 <= prescription.refills <= 12:
            raise RecordError(f"Prescription {position}: refills must be between 0 and 12.", "prescriptions")


def _apply(record: MedicalRecord, data: RecordInput) -> list[str]:
    """Copy the input onto the record; return the names of the fields that changed."""

    changed = []
    for name in SCALAR_FIELDS:
        value = getattr(data, name)
        if isinstance(value, str):
            value = value.strip() or None
        if name == "chief_complaint":
            value = value or ""
        if getattr(record, name) != value:
            setattr(record, name, value)
            changed.append(name)
    confirmed = [d for d in data.diagnoses if not d.is_unconfirmed_suggestion]
    suggestions = []
    for given in data.diagnoses:
        if given.is_unconfirmed_suggestion:
            code = find_code(given.code)
            suggestions.append({"code": code.display_code, "name": code.name, "primary": given.is_primary})
    if suggestions != record.unconfirmed_suggestions:
        record.suggested_diagnoses = suggestions or None
        changed.append("suggested_diagnoses")
    diagnoses = []
    for index, given in enumerate(confirmed):
        code = find_code(given.code)
        diagnoses.append(
            (
                code.display_code,
                code.name,
                given.is_primary or (index == 0 and not any(d.is_primary for d in confirmed)),
                given.notes.strip() or None,
            )
        )
    if diagnoses != [(d.code, d.name, d.is_primary, d.notes) for d in record.diagnoses]:
        record.diagnoses.clear()
        for code, name, primary, notes in diagnoses:
            record.diagnoses.append(
                Diagnosis(tenant_id=record.tenant_id, code=code, name=name, is_primary=primary, notes=notes)
            )
        changed.append("diagnoses")
    prescriptions = [
        (p.drug.strip(), p.dose.strip(), p.route, p.frequency.strip(), p.duration.strip() or None, p.refills)
        for p in data.prescriptions
    ]
    current = [(p.drug, p.dose, p.route, p.frequency, p.duration, p.refills) for p in record.prescriptions]
    if prescriptions != current:
        record.prescriptions.clear()
        for drug, dose, route, frequency, duration, refills in prescriptions:
            record.prescriptions.append(
                Prescription(
                    tenant_id=record.tenant_id,
                    drug=drug,
                    dose=dose,
                    route=route,
                    frequency=frequency,
                    duration=duration,
                    refills=refills,
                )
            )
        changed.append("prescriptions")
    return changed


def _stage_labs(actor: Actor, record: MedicalRecord, data: RecordInput) -> bool:
    """Add the form's new lab rows to the record, in the record's transaction. True when there were any."""

    zone = db.session.get(Tenant, actor.tenant_id).timezone
    rows, errors = read_lab_rows(data.lab_rows, zone=zone)
    if errors:
        raise RecordError("Lab results: " + "; ".join(str(error) for error in errors), "labs")
    if rows:
        stage_lab_results(actor, record.patient_id, rows, record.id)
    return bool(rows)


def create_record(
    actor: Actor, patient_id: int, data: RecordInput, template_version_id: int | None = None
) -> MedicalRecord:
    """A new draft record for the clinic's patient."""
    require(actor, "record.write")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise LookupError(patient_id)
    if (
        template_version_id is not None
        and get_scoped(TemplateVersion, template_version_id, actor.tenant_id) is None
    ):
        raise RecordError("Choose one of this clinic's templates.", "template")
    _validate(actor, data)
    record = MedicalRecord(
        tenant_id=actor.tenant_id,
        patient_id=patient.id,
        author_id=actor.user_id,
        template_version_id=template_version_id,
        status=DRAFT,
    )
    db.session.add(record)
    return _save(actor, record, data, "record.create")


def _save(actor: Actor, record: MedicalRecord, data: RecordInput, action: str) -> MedicalRecord:
    """Apply validated input and the form's new labs to a record, audit the changed fields, commit."""
    changed = _apply(record, data)
    db.session.flush()
    if _stage_labs(actor, record, data):
        changed.append("labs")
    record_event(
        actor,
        action,
        resource_type="record",
        resource_id=record.id,
        patient_id=record.patient_id,
        changed_fields=changed,
    )
    events.commit()  # with the events of the form's new labs, if any
    return record


def _draft_for_change(actor: Actor, record_id: int) -> MedicalRecord:
    """The clinic's draft, claimed for this transaction before anything is read from it.

    A guarded UPDATE (`… WHERE status = 'draft'`) takes the row lock on PostgreSQL and the write lock on
    SQLite: an edit and a finalization of one record run one after the other, and whichever comes second
    sees what the first committed (an edit after finalization is refused, never applied).
    """
    claimed = db.session.execute(
        update(MedicalRecord)
        .where(
            MedicalRecord.id == record_id,
            MedicalRecord.tenant_id == actor.tenant_id,
            MedicalRecord.status == DRAFT,
        )
        .values(status=DRAFT)
        .execution_options(synchronize_session=False)
    ).rowcount
    record = db.session.scalar(
        scoped(MedicalRecord, actor.tenant_id)
        .where(MedicalRecord.id == record_id)
        .execution_options(populate_existing=True)
    )
    if record is None:
        raise LookupError(record_id)
    if not claimed or not record.is_draft:
        raise RecordError("This record is finalized and can no longer change. Add an addendum instead.")
    return record


def update_record(actor: Actor, record_id: int, data: RecordInput) -> MedicalRecord:
    """Change a draft; the audit event names the fields that changed."""
    require(actor, "record.write")
    record = _draft_for_change(actor, record_id)
    _validate(actor, data)
    return _save(actor, record, data, "record.update")


def delete_record(actor: Actor, record_id: int) -> int:
    """Delete a draft (finalized records are never deleted). Its labs stay on the patient. Returns the
    patient id."""
    require(actor, "record.write")
    record = _draft_for_change(actor, record_id)
    patient_id = record.patient_id
    for lab in record.labs:
        lab.record_id = None
    record_event(actor, "record.delete", resource_type="record", resource_id=record.id, patient_id=patient_id)
    db.session.delete(record)
    db.session.commit()
    return patient_id


def finalize_record(actor: Actor, record_id: int) -> MedicalRecord:
    """Make a draft a permanent document. Only doctors and admins may."""
    require(actor, "record.finalize")
    record = _draft_for_change(actor, record_id)
    if record.unconfirmed_suggestions:
        named = "; ".join(f"{d['code']} {d['name']}" for d in record.unconfirmed_suggestions)
        raise RecordError(
            "The template suggested diagnoses nobody has confirmed: "
            f"{named}. Edit the draft and tick “Confirm” on each that applies, or clear the ones that "
            "do not; then finalize."
        )
    if not record.diagnoses:
        raise RecordError("Add at least one diagnosis before finalizing.")
    record.status = FINALIZED
    record.finalized_at = utcnow()
    record.finalized_by_id = actor.user_id
    record_event(
        actor,
        "record.finalize",
        resource_type="record",
        resource_id=record.id,
        patient_id=record.patient_id,
        changed_fields=["status", "finalized_at", "finalized_by_id"],
    )
    db.session.commit()
    return record


def add_addendum(actor: Actor, record_id: int, text: str) -> Addendum:
    """A correction under a finalized record (doctors and admins)."""
    require(actor, "record.addendum")
    record = get_scoped(MedicalRecord, record_id, actor.tenant_id)
    if record is None:
        raise LookupError(record_id)
    if not record.is_finalized:
        raise RecordError("Drafts are edited directly; addenda are for finalized records.", "text")
    text = text.strip()
    if not text:
        raise RecordError("Write the addendum.", "text")
    addendum = Addendum(tenant_id=record.tenant_id, record_id=record.id, author_id=actor.user_id, text=text)
    db.session.add(addendum)
    db.session.flush()
    record_event(
        actor,
        "record.addendum",
        resource_type="record",
        resource_id=record.id,
        patient_id=record.patient_id,
        changed_fields=["addenda"],
    )
    db.session.commit()
    return addendum
