"""The self-service tables: refill requests, symptom entries, dose marks, care plan versions and their
acknowledgements. (A prescription's dose schedule is `Prescription.schedule`, records/models.py.)"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
REFILL_STATUSES = {PENDING: "Waiting for an answer", APPROVED: "Approved", DENIED: "Not approved"}

TAKEN = "taken"
MISSED = "missed"
DOSE_STATUSES = {TAKEN: "Taken", MISSED: "Missed"}


class RefillRequest(TenantScoped, db.Model):
    """A patient asking for more of a current prescription; staff decide it once."""

    __tablename__ = "refill_requests"
    __table_args__ = (
        # One open request per prescription: two taps of "Send" (or two tabs) make one request.
        Index(
            "uq_refill_requests_open_per_prescription",
            "prescription_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_refill_requests_tenant_status_requested", "tenant_id", "status", "requested_at"),
        Index("ix_refill_requests_patient_requested", "patient_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    # When the patient last opened their refills page after the answer (the dashboard's "needs you").
    patient_seen_at: Mapped[datetime | None] = mapped_column(DateTime)

    prescription = relationship("Prescription")
    patient = relationship("Patient")
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def status_label(self) -> str:
        return REFILL_STATUSES.get(self.status, self.status)

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING


class SymptomEntry(TenantScoped, db.Model):
    """One line of a patient's symptom log."""

    __tablename__ = "symptom_entries"
    __table_args__ = (Index("ix_symptom_entries_patient_occurred", "tenant_id", "patient_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    symptom: Mapped[str] = mapped_column(String(40))  # a code of SYMPTOMS, or "other"
    other_name: Mapped[str | None] = mapped_column(String(80))  # what "other" was
    severity: Mapped[int] = mapped_column(Integer)  # 0 (none) to 10 (worst)
    notes: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DoseMark(TenantScoped, db.Model):
    """A scheduled dose marked taken or missed by the patient: one mark per dose (prescription, day, time)."""

    __tablename__ = "dose_marks"
    __table_args__ = (
        UniqueConstraint("prescription_id", "dose_day", "slot", name="uq_dose_marks_dose"),
        Index("ix_dose_marks_patient_day", "tenant_id", "patient_id", "dose_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"))
    dose_day: Mapped[date] = mapped_column(Date)  # the clinic's calendar day
    slot: Mapped[str] = mapped_column(String(5))  # the scheduled time of day, "08:00"
    status: Mapped[str] = mapped_column(String(10))
    marked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    marked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CarePlanVersion(TenantScoped, db.Model):
    """One version of a patient's care plan; every edit adds the next number, older versions stay."""

    __tablename__ = "care_plan_versions"
    __table_args__ = (UniqueConstraint("patient_id", "number", name="uq_care_plan_versions_patient_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    goals: Mapped[str] = mapped_column(Text)
    instructions: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    author = relationship("User", foreign_keys=[author_id])
    acknowledgements: Mapped[list[CarePlanAcknowledgement]] = relationship(
        back_populates="version", order_by="CarePlanAcknowledgement.acknowledged_at"
    )


class CarePlanAcknowledgement(TenantScoped, db.Model):
    """Who read and acknowledged which version, and when (once per version and person)."""

    __tablename__ = "care_plan_acknowledgements"
    __table_args__ = (UniqueConstraint("version_id", "user_id", name="uq_care_plan_acks_version_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("care_plan_versions.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    version: Mapped[CarePlanVersion] = relationship(back_populates="acknowledgements")
    user = relationship("User", foreign_keys=[user_id])
