"""The patient list and profile."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

CARE_STAGES = {
    "new": "New",
    "onboarding": "Onboarding",
    "active": "Active care",
    "maintenance": "Maintenance",
    "discharged": "Discharged",
}
SEXES = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}


class Patient(TenantScoped, db.Model):
    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mrn"),
        Index("ix_patients_tenant_name", "tenant_id", "last_name", "first_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(20))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(10), default="unknown")
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    address_line: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(50))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    insurance_provider: Mapped[str | None] = mapped_column(String(120))
    insurance_member_id: Mapped[str | None] = mapped_column(String(60))
    insurance_group: Mapped[str | None] = mapped_column(String(60))
    care_stage: Mapped[str] = mapped_column(String(20), default="new")
    assigned_coach_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Staff may turn the portal's messages off for a patient (portal/messages): sending is then refused.
    messaging_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    assigned_coach = relationship("User", foreign_keys=[assigned_coach_id])
    portal_user = relationship(
        "User", foreign_keys="User.patient_id", back_populates="patient", uselist=False
    )
    emergency_contacts: Mapped[list[EmergencyContact]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", order_by="EmergencyContact.id"
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def care_stage_label(self) -> str:
        return CARE_STAGES.get(self.care_stage, self.care_stage)

    def age_on(self, day: date) -> int:
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class EmergencyContact(TenantScoped, db.Model):
    __tablename__ = "emergency_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    relationship_to_patient: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(40))

    patient: Mapped[Patient] = relationship(back_populates="emergency_contacts")
