"""What a share shows: exactly its scope, read live (corrections and addenda made after sharing show, and
are marked as such). Every page, fragment, export and file of the provider's side is built from
`shared_content`, so nothing outside the scope can reach them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..accounts.models import Tenant
from ..clock import clinic_today
from ..extensions import db
from ..files.models import Attachment, AttachmentVersion
from ..patients.models import Patient
from ..records.labs import display_unit
from ..records.liver import latest_inputs, scores_from
from ..records.models import (
    FINALIZED,
    Addendum,
    Allergy,
    Diagnosis,
    Immunization,
    LabResult,
    MedicalRecord,
)
from ..records.patient_view import patient_copy, patient_today, released_labs
from ..records.scores import ScoreResult
from .models import RECORD_TYPES, SCOPE_ALL, SCOPE_RECORDS, ShareLink

IMAGING_KINDS = frozenset({"dicom", "jpeg", "png", "tiff", "heic"})
# Insight rules: a change of more than this share between the first and last value in the shared period.
CHANGE_SHARE = 0.25
MELD_THRESHOLD = 15
KEY_LAB_LIMIT = 12


@dataclass(frozen=True)
class Insight:
    """A notable finding in plain language, and the data it came from."""

    text: str
    source: str
    severity: str = "info"  # "info" or "warn"


@dataclass
class SharedContent:
    share: ShareLink
    patient: Patient
    covers: frozenset[str]  # the record types of RECORD_TYPES this share shows
    records: list[MedicalRecord] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    allergies: list[Allergy] = field(default_factory=list)
    immunizations: list[Immunization] = field(default_factory=list)
    labs: list[LabResult] = field(default_factory=list)
    latest_labs: list[LabResult] = field(default_factory=list)
    scores: list[ScoreResult] = field(default_factory=list)
    insights: list[Insight] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    vitals_record: MedicalRecord | None = None

    @property
    def age(self) -> int | None:
        born = self.patient.date_of_birth
        if born is None:
            return None
        today = clinic_today(db.session.get(Tenant, self.share.tenant_id).timezone)
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    def shows(self, kind: str) -> bool:
        return kind in self.covers

    def amended_after_sharing(self, record: MedicalRecord) -> bool:
        return any(addendum.created_at > self.share.created_at for addendum in record.addenda)

    @property
    def labs_by_test(self) -> dict[str, list[LabResult]]:
        grouped: dict[str, list[LabResult]] = {}
        for lab in self.labs:
            grouped.setdefault(lab.code, []).append(lab)
        return grouped


def covered_types(share: ShareLink) -> frozenset[str]:
    if share.scope == SCOPE_ALL:
        return frozenset(RECORD_TYPES)
    if share.scope == SCOPE_RECORDS:
        # Chosen records bring their own visit notes, prescriptions, labs and files.
        return frozenset({"visits", "prescriptions", "labs", "imaging", "attachments"})
    return frozenset(share.scope_types or ())


def shared_content(share: ShareLink) -> SharedContent:
    """Everything the share shows, read now, limited to its clinic, its patient and its scope."""
    patient = db.session.scalar(
        select(Patient).where(Patient.tenant_id == share.tenant_id, Patient.id == share.patient_id)
    )
    if patient is None:
        raise LookupError(share.patient_id)
    covers = covered_types(share)
    content = SharedContent(share=share, patient=patient, covers=covers)
    records_query = (
        select(MedicalRecord)
        .where(
            MedicalRecord.tenant_id == share.tenant_id,
            MedicalRecord.patient_id == patient.id,
            MedicalRecord.status == FINALIZED,
        )
        .options(
            selectinload(MedicalRecord.diagnoses),
            selectinload(MedicalRecord.prescriptions),
            selectinload(MedicalRecord.addenda).selectinload(Addendum.author),
            selectinload(MedicalRecord.doctor),
        )
        .order_by(MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
    )
    if share.scope == SCOPE_RECORDS:
        records_query = records_query.where(MedicalRecord.id.in_(share.scope_record_ids or [0]))
    in_scope_records = list(db.session.scalars(records_query))
    record_ids = [record.id for record in in_scope_records]
    # A share the patient made shows what the patient may see (records/patient_view.py): no hidden notes,
    # no held result. Staff sharing for the patient share the clinical record.
    made_by_patient = not share.created_by_staff
    today = patient_today(share.tenant_id)
    if made_by_patient:
        in_scope_records = patient_copy(in_scope_records, today)
    if "visits" in covers or "prescriptions" in covers:
        content.records = in_scope_records
    if "visits" in covers:
        seen: set[str] = set()
        for record in in_scope_records:
            for diagnosis in record.diagnoses:
                if diagnosis.code not in seen:
                    seen.add(diagnosis.code)
                    content.diagnoses.append(diagnosis)
        content.vitals_record = next(
            (r for r in in_scope_records if r.bp_systolic or r.pulse or r.weight_kg), None
        )
    if "allergies" in covers:
        content.allergies = list(
            db.session.scalars(
                select(Allergy)
                .where(Allergy.tenant_id == share.tenant_id, Allergy.patient_id == patient.id)
                .order_by(Allergy.recorded_at.desc())
            )
        )
    if "vaccinations" in covers:
        content.immunizations = list(
            db.session.scalars(
                select(Immunization)
                .where(Immunization.tenant_id == share.tenant_id, Immunization.patient_id == patient.id)
                .order_by(Immunization.given_on.desc())
            )
        )
    if "labs" in covers:
        if made_by_patient:
            chosen = record_ids if share.scope == SCOPE_RECORDS else None
            content.labs = released_labs(share.tenant_id, patient.id, today, chosen)
        else:
            labs_query = select(LabResult).where(
                LabResult.tenant_id == share.tenant_id, LabResult.patient_id == patient.id
            )
            if share.scope == SCOPE_RECORDS:
                labs_query = labs_query.where(LabResult.record_id.in_(record_ids or [0]))
            content.labs = list(db.session.scalars(labs_query.order_by(LabResult.observed_at, LabResult.id)))
        content.latest_labs = _latest_per_test(content.labs)[:KEY_LAB_LIMIT]
        assessed = in_scope_records if "visits" in covers else []
        content.scores = scores_from(patient, latest_inputs(content.labs), assessed)
    if "attachments" in covers or "imaging" in covers:
        attachments = db.session.scalars(
            _attachments_query(share).order_by(Attachment.updated_at.desc(), Attachment.id.desc())
        )
        content.attachments = [a for a in attachments if _shows_file(a, covers)]
    content.insights = insights(content)
    return content


def _attachments_query(share: ShareLink):
    """The attachments on the finalized records a share covers, with their current versions."""
    query = (
        select(Attachment)
        .join(MedicalRecord, MedicalRecord.id == Attachment.record_id)
        .where(
            Attachment.tenant_id == share.tenant_id,
            Attachment.patient_id == share.patient_id,
            MedicalRecord.tenant_id == share.tenant_id,
            MedicalRecord.patient_id == share.patient_id,
            MedicalRecord.status == FINALIZED,
        )
        .options(selectinload(Attachment.current_version))
    )
    if share.scope == SCOPE_RECORDS:
        query = query.where(MedicalRecord.id.in_(share.scope_record_ids or [0]))
    return query


def _shows_file(attachment: Attachment, covers: frozenset[str]) -> bool:
    """A file is shown when its current version may be opened and the scope covers its kind."""
    version = attachment.current_version
    return (
        version is not None
        and version.openable
        and ("attachments" in covers or version.kind in IMAGING_KINDS)
    )


def shared_attachment(share: ShareLink, attachment_id: int) -> tuple[Attachment, AttachmentVersion] | None:
    """A file of the share (its current version), or None when the share does not cover it. One scoped
    query for the one file: every preview image asks, so the whole shared content is not rebuilt."""
    covers = covered_types(share)
    if "attachments" not in covers and "imaging" not in covers:
        return None
    attachment = db.session.scalar(_attachments_query(share).where(Attachment.id == attachment_id))
    if attachment is None or not _shows_file(attachment, covers):
        return None
    return attachment, attachment.current_version


def _latest_per_test(labs: list[LabResult]) -> list[LabResult]:
    latest: dict[str, LabResult] = {}
    for lab in labs:
        latest[lab.code] = lab  # labs are in time order
    return sorted(latest.values(), key=lambda lab: (lab.flag in (None, "N"), lab.name))


def _when(moment: datetime) -> str:
    return moment.strftime("%d %b %Y")


def lab_value(lab: LabResult) -> str:
    """A result as people read it: the value and its unit as written (10³/µL), or the text result."""
    if lab.value_numeric is None:
        return lab.value_text or ""
    return f"{lab.value_numeric:g} {display_unit(lab.unit)}".strip()


def insights(content: SharedContent) -> list[Insight]:
    """Explicit rules, each naming its data: a latest value outside its range, a change of more than
    CHANGE_SHARE over the shared period, a score over its threshold."""
    found: list[Insight] = []
    for lab in content.latest_labs:
        if lab.value_numeric is None or (lab.ref_low is None and lab.ref_high is None):
            continue
        if lab.ref_high is not None and lab.value_numeric > lab.ref_high:
            where = "above"
        elif lab.ref_low is not None and lab.value_numeric < lab.ref_low:
            where = "below"
        else:
            continue
        found.append(
            Insight(
                f"{lab.name} is {where} its reference range: {lab_value(lab)}",
                f"{lab.name} of {_when(lab.observed_at)}, range {_range(lab)}",
                "warn",
            )
        )
    for tests in content.labs_by_test.values():
        numeric = [lab for lab in tests if lab.value_numeric is not None]
        if len(numeric) < 2 or not numeric[0].value_numeric:
            continue
        first, last = numeric[0], numeric[-1]
        change = (last.value_numeric - first.value_numeric) / abs(first.value_numeric)
        if abs(change) > CHANGE_SHARE:
            verb = "rose" if change > 0 else "fell"
            found.append(
                Insight(
                    f"{last.name} {verb} {abs(change):.0%} over the shared period",
                    f"{lab_value(first)} on {_when(first.observed_at)} → "
                    f"{lab_value(last)} on {_when(last.observed_at)}",
                )
            )
    for score in content.scores:
        if score.value is None:
            continue
        if score.name.startswith("MELD") and score.value >= MELD_THRESHOLD:
            found.append(
                Insight(
                    f"{score.name} is {score.value}, at or above {MELD_THRESHOLD}",
                    f"{score.name} from the latest shared labs",
                    "warn",
                )
            )
        if score.category in ("B", "C"):
            found.append(
                Insight(
                    f"{score.name} class {score.category} ({score.value} points)",
                    f"{score.name} from the latest shared labs and assessment",
                    "warn",
                )
            )
    return found


def _range(lab: LabResult) -> str:
    low = "" if lab.ref_low is None else f"{lab.ref_low:g}"
    high = "" if lab.ref_high is None else f"{lab.ref_high:g}"
    return f"{low}–{high} {display_unit(lab.unit)}".strip()
