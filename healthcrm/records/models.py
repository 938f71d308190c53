"""Medical records: visits with diagnoses, prescriptions, vitals and labs; allergies and immunizations
per patient; templates with versions; the ICD-10-CM code list."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql import false

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

DRAFT = "draft"
FINALIZED = "finalized"
ASCITES = {"none": "None", "slight": "Slight", "moderate": "Moderate to severe"}
ENCEPHALOPATHY = {"none": "None", "grade_1_2": "Grade 1–2", "grade_3_4": "Grade 3–4"}
ROUTES = {
    "oral": "Oral",
    "iv": "Intravenous",
    "im": "Intramuscular",
    "sc": "Subcutaneous",
    "topical": "Topical",
    "inhaled": "Inhaled",
    "other": "Other",
}
ALLERGY_SEVERITIES = {"mild": "Mild", "moderate": "Moderate", "severe": "Severe"}
ALLERGY_STATUSES = {"active": "Active", "inactive": "Inactive", "resolved": "Resolved"}


class MedicalRecord(TenantScoped, db.Model):
    __tablename__ = "medical_records"
    __table_args__ = (
        # One index per list filter, each led by the clinic and ending with the sort column.
        Index("ix_records_tenant_visit", "tenant_id", "visit_at"),
        Index("ix_records_tenant_doctor_visit", "tenant_id", "doctor_id", "visit_at"),
        Index("ix_records_tenant_status_visit", "tenant_id", "status", "visit_at"),
        Index("ix_records_tenant_patient_visit", "tenant_id", "patient_id", "visit_at"),
        Index("ix_records_tenant_follow_up", "tenant_id", "follow_up_required", "follow_up_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("record_template_versions.id"))
    visit_at: Mapped[datetime] = mapped_column(DateTime)
    chief_complaint: Mapped[str] = mapped_column(String(500))
    treatment_plan: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    # What the patient reads of this visit (records/patient_view.py): a plain-language summary, and the
    # clinical notes (and addenda) only when a clinician marks them visible. Release settings of the
    # patient's copy, not clinical content: they may change after finalizing (audited).
    patient_summary: Mapped[str | None] = mapped_column(Text)
    notes_visible_to_patient: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    bp_systolic: Mapped[int | None] = mapped_column(Integer)
    bp_diastolic: Mapped[int | None] = mapped_column(Integer)
    pulse: Mapped[int | None] = mapped_column(Integer)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    respiratory_rate: Mapped[int | None] = mapped_column(Integer)
    spo2: Mapped[int | None] = mapped_column(Integer)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    height_cm: Mapped[float | None] = mapped_column(Float)
    ascites: Mapped[str | None] = mapped_column(String(20))
    encephalopathy: Mapped[str | None] = mapped_column(String(20))
    on_dialysis: Mapped[bool] = mapped_column(Boolean, default=False)
    follow_up_required: Mapped[bool] = mapped_column(Boolean, default=False)
    follow_up_date: Mapped[date | None] = mapped_column(Date)
    # Diagnoses a template suggested that the clinician has not confirmed: [{"code", "name", "primary"}].
    # Not diagnoses (not in `diagnoses`, the search, a share or an export); a draft keeps them to show
    # again, and finalizing is refused while there are any.
    suggested_diagnoses: Mapped[list | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=DRAFT)
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime)
    finalized_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    attachment_count: Mapped[int] = mapped_column(Integer, default=0)
    # Lower-cased complaint, notes, patient names and MRN, diagnoses: what the list's search reads
    # (kept by `records.search`, indexed there).
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    patient = relationship("Patient")
    doctor = relationship("User", foreign_keys=[doctor_id])
    author = relationship("User", foreign_keys=[author_id])
    finalized_by = relationship("User", foreign_keys=[finalized_by_id])
    template_version = relationship("TemplateVersion")
    diagnoses: Mapped[list[Diagnosis]] = relationship(
        back_populates="record",
        cascade="all, delete-orphan",
        order_by="(Diagnosis.is_primary.desc(), Diagnosis.id)",
    )
    prescriptions: Mapped[list[Prescription]] = relationship(
        back_populates="record", cascade="all, delete-orphan", order_by="Prescription.id"
    )
    labs: Mapped[list[LabResult]] = relationship(back_populates="record", order_by="LabResult.observed_at")
    addenda: Mapped[list[Addendum]] = relationship(
        back_populates="record", cascade="all, delete-orphan", order_by="Addendum.created_at"
    )

    @property
    def is_draft(self) -> bool:
        return self.status == DRAFT

    @property
    def is_finalized(self) -> bool:
        return self.status == FINALIZED

    @property
    def bmi(self) -> float | None:
        """Body-mass index from weight and height, to one decimal."""
        if not self.weight_kg or not self.height_cm:
            return None
        metres = self.height_cm / 100
        return round(self.weight_kg / (metres * metres), 1)

    @property
    def unconfirmed_suggestions(self) -> list[dict]:
        return list(self.suggested_diagnoses or [])

    @property
    def primary_diagnosis(self) -> Diagnosis | None:
        return next(
            (d for d in self.diagnoses if d.is_primary), self.diagnoses[0] if self.diagnoses else None
        )


class Diagnosis(TenantScoped, db.Model):
    __tablename__ = "diagnoses"
    __table_args__ = (Index("ix_diagnoses_tenant_code", "tenant_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("medical_records.id"), index=True)
    code: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(300))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str | None] = mapped_column(String(1000))

    record: Mapped[MedicalRecord] = relationship(back_populates="diagnoses")


class Prescription(TenantScoped, db.Model):
    __tablename__ = "prescriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("medical_records.id"), index=True)
    drug: Mapped[str] = mapped_column(String(200))
    dose: Mapped[str] = mapped_column(String(100))
    route: Mapped[str] = mapped_column(String(20))
    frequency: Mapped[str] = mapped_column(String(100))
    duration: Mapped[str | None] = mapped_column(String(100))
    refills: Mapped[int] = mapped_column(Integer, default=0)
    # The dose times of day for the portal's adherence marks (["08:00", "20:00"]); None: derived from
    # `frequency` for the common ones (healthcrm/selfcare/schedule.py). Not clinical content: staff may set
    # it on a finalized record too.
    schedule: Mapped[list | None] = mapped_column(JSON)

    record: Mapped[MedicalRecord] = relationship(back_populates="prescriptions")


class LabResult(TenantScoped, db.Model):
    __tablename__ = "lab_results"
    __table_args__ = (
        Index("ix_labs_tenant_patient_code_time", "tenant_id", "patient_id", "code", "observed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("medical_records.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    value_numeric: Mapped[float | None] = mapped_column(Float)
    value_text: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(30))
    ref_low: Mapped[float | None] = mapped_column(Float)
    ref_high: Mapped[float | None] = mapped_column(Float)
    flag: Mapped[str | None] = mapped_column(String(2))
    observed_at: Mapped[datetime] = mapped_column(DateTime)
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Results reach the patient at once (the US information-blocking rule) unless a clinician holds this
    # one (records/result_holds.py): hidden from the patient before `hold_until` (a clinic date, the day it
    # shows), or until released early (`hold_released_at`). Reason, who and when stay for the history.
    hold_until: Mapped[date | None] = mapped_column(Date)
    hold_reason: Mapped[str | None] = mapped_column(String(500))
    held_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    held_at: Mapped[datetime | None] = mapped_column(DateTime)
    hold_released_at: Mapped[datetime | None] = mapped_column(DateTime)

    record: Mapped[MedicalRecord | None] = relationship(back_populates="labs")
    held_by = relationship("User", foreign_keys=[held_by_id])

    def is_held(self, today: date) -> bool:
        """Whether the patient may not see this result on the clinic's day `today`."""
        return self.hold_until is not None and self.hold_released_at is None and today < self.hold_until

    @property
    def display_value(self) -> str:
        if self.value_numeric is not None:
            return f"{self.value_numeric:g}"
        return self.value_text or ""

    @property
    def reference_range(self) -> str:
        if self.ref_low is not None and self.ref_high is not None:
            return f"{self.ref_low:g}–{self.ref_high:g}"
        if self.ref_low is not None:
            return f"≥ {self.ref_low:g}"
        if self.ref_high is not None:
            return f"≤ {self.ref_high:g}"
        return ""


class LabImport(TenantScoped, db.Model):
    """One confirmed lab CSV import, by the import id of its preview. The unique key is what makes a confirm
    sent twice (or two at once) import once: the second insert finds the first's row."""

    __tablename__ = "lab_imports"
    __table_args__ = (UniqueConstraint("tenant_id", "import_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Allergy(TenantScoped, db.Model):
    __tablename__ = "allergies"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    substance: Mapped[str] = mapped_column(String(200))
    reaction: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active")
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Immunization(TenantScoped, db.Model):
    __tablename__ = "immunizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    vaccine: Mapped[str] = mapped_column(String(200))
    given_on: Mapped[date] = mapped_column(Date)
    dose_number: Mapped[int | None] = mapped_column(Integer)
    lot: Mapped[str | None] = mapped_column(String(60))
    site: Mapped[str | None] = mapped_column(String(60))
    given_by: Mapped[str | None] = mapped_column(String(200))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Addendum(TenantScoped, db.Model):
    """A correction to a finalized record: the record itself never changes again."""

    __tablename__ = "addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("medical_records.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    record: Mapped[MedicalRecord] = relationship(back_populates="addenda")
    author = relationship("User")


class RecordTemplate(TenantScoped, db.Model):
    __tablename__ = "record_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    specialty: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template", order_by="TemplateVersion.version", cascade="all, delete-orphan"
    )

    @property
    def current(self) -> TemplateVersion | None:
        return self.versions[-1] if self.versions else None


class TemplateVersion(TenantScoped, db.Model):
    """An immutable snapshot of a template; records remember the version they were made from."""

    __tablename__ = "record_template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("record_templates.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    prefill: Mapped[dict] = mapped_column(JSON, default=dict)
    sections: Mapped[list] = mapped_column(JSON, default=list)
    default_diagnoses: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    template: Mapped[RecordTemplate] = relationship(back_populates="versions")


class Icd10Code(db.Model):
    """The ICD-10-CM code list (public domain, CMS), shared by every clinic; loaded by `flask icd10 load`."""

    __tablename__ = "icd10_codes"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)  # without the dot, e.g. K7031
    display_code: Mapped[str] = mapped_column(String(10))  # with the dot, e.g. K70.31
    name: Mapped[str] = mapped_column(String(300))
    # Lower-case code and name. No index: the typeahead's LIKE '%word%' cannot use one.
    search_text: Mapped[str] = mapped_column(String(320))
    billable: Mapped[bool] = mapped_column(Boolean, default=True)
