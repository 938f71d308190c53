"""Identity change requests: a patient asks for a new name, date of birth or sex; staff decide."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...clock import utcnow
from ...extensions import db
from ...patients.models import SEXES
from ...tenancy import TenantScoped

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
CHANGE_STATUSES = {
    PENDING: "Waiting for the clinic",
    APPROVED: "Approved",
    REJECTED: "Not approved",
    WITHDRAWN: "Withdrawn",
}
# The fields a patient cannot change themselves, with the words the pages use.
IDENTITY_FIELDS = {
    "first_name": "First name",
    "last_name": "Last name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
}


class ProfileChangeRequest(TenantScoped, db.Model):
    __tablename__ = "profile_change_requests"
    __table_args__ = (
        # One pending request per patient: the database refuses a second, even when two arrive at once.
        Index(
            "uq_profile_change_requests_pending",
            "patient_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_profile_change_requests_tenant_status", "tenant_id", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # {"last_name": {"from": "Smith", "to": "Jones"}}: only the fields asked to change; dates in ISO form.
    changes: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)

    patient = relationship("Patient")
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING

    @property
    def status_label(self) -> str:
        return CHANGE_STATUSES.get(self.status, self.status)

    def rows(self) -> list[tuple[str, str, str]]:
        """(label, old value, new value) for each field asked to change, in the form's order."""
        return [
            (label, _shown(name, self.changes[name]["from"]), _shown(name, self.changes[name]["to"]))
            for name, label in IDENTITY_FIELDS.items()
            if name in self.changes
        ]


def _shown(name: str, value: str | None) -> str:
    if name == "sex":
        return SEXES.get(value or "", value or "")
    return value or ""
