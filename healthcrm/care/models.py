"""Staff tasks made from portal events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

OPEN = "open"
WAITING = "waiting"  # waiting on the patient: the due time is paused
DONE = "done"
TASK_STATUSES = {OPEN: "Open", WAITING: "Waiting on patient", DONE: "Done"}


class Task(TenantScoped, db.Model):
    """Something a person at the clinic has to do for a patient, made from a portal event."""

    __tablename__ = "care_tasks"
    __table_args__ = (
        # One task of a kind per event: an event handled twice makes one task.
        UniqueConstraint("event_id", "kind", name="uq_care_tasks_event_kind"),
        Index("ix_care_tasks_tenant_status_due", "tenant_id", "status", "due_at"),
        Index("ix_care_tasks_assignee_status", "assignee_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("portal_events.id"))
    kind: Mapped[str] = mapped_column(String(40))  # message, document, refill, profile_change, …
    title: Mapped[str] = mapped_column(String(200))
    # The item the task is about, and the staff page that opens it.
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    link: Mapped[str | None] = mapped_column(String(500))
    # Either a person, or a pool of roles anyone in which may claim it (assignee_id then null).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    pool_roles: Mapped[list | None] = mapped_column(JSON)
    pool_name: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=OPEN)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)
    # While waiting on the patient: when the wait began and the clinic hours that were left.
    paused_at: Mapped[datetime | None] = mapped_column(DateTime)
    remaining_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    completion_note: Mapped[str | None] = mapped_column(Text)

    assignee = relationship("User", foreign_keys=[assignee_id])
    patient = relationship("Patient")

    @property
    def status_label(self) -> str:
        return TASK_STATUSES.get(self.status, self.status)


# Response targets in clinic hours, per task kind; "default" for every other kind.
DEFAULT_KIND = "default"
DEFAULT_RESPONSE_HOURS = {"message": 8, "refill": 16, DEFAULT_KIND: 24}
TARGET_KINDS = {
    "message": "Messages",
    "refill": "Refill requests",
    "document": "Uploaded documents",
    "profile_change": "Profile change requests",
    "care_plan": "Care plan acknowledgements",
    DEFAULT_KIND: "Everything else",
}


class ResponseTarget(TenantScoped, db.Model):
    """How many clinic hours the clinic gives itself to act on a task of one kind."""

    __tablename__ = "care_response_targets"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", name="uq_care_response_targets_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    hours: Mapped[int] = mapped_column(Integer)


ANY_STAGE = "*"


class CareStageRule(TenantScoped, db.Model):
    """When an event of `event_kind` happens (the patient's first of that kind, if `first_time_only`) and the
    patient is in `from_stage` (or any stage: "*"), move the patient to `to_stage`."""

    __tablename__ = "care_stage_rules"
    __table_args__ = (
        # One rule per event and stage: two rules could only disagree.
        UniqueConstraint("tenant_id", "event_kind", "from_stage", name="uq_care_stage_rules_event_stage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_kind: Mapped[str] = mapped_column(String(60))
    from_stage: Mapped[str] = mapped_column(String(20), default=ANY_STAGE)
    to_stage: Mapped[str] = mapped_column(String(20))
    first_time_only: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CareStageMove(TenantScoped, db.Model):
    """A patient's care stage changed by a rule (the history on the patient page)."""

    __tablename__ = "care_stage_moves"
    __table_args__ = (Index("ix_care_stage_moves_patient", "tenant_id", "patient_id", "moved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    from_stage: Mapped[str] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("care_stage_rules.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("portal_events.id"))
    moved_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    rule = relationship("CareStageRule")
