"""Legal holds (a patient's records kept whatever their retention) and the trace a purge leaves."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

HOLD_REASON_MAX_CHARS = 500


class LegalHold(TenantScoped, db.Model):
    """A hold on one patient's records: while it is active (not released) no purge removes them.

    At most one active hold per patient, by a partial unique index (SQLite and PostgreSQL both have them):
    two admins placing a hold at once get one hold and a clear message, not two rows. A released hold is
    history of the patient and goes with their records when they are purged (its reason may name health
    matters); the audit log keeps that a hold was placed and released.
    """

    __tablename__ = "legal_holds"
    __table_args__ = (
        Index(
            "uq_legal_holds_active",
            "tenant_id",
            "patient_id",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    reason: Mapped[str] = mapped_column(String(HOLD_REASON_MAX_CHARS))
    placed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    placed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(DateTime)
    released_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class RecordPurge(TenantScoped, db.Model):
    """What one purge removed: the patient's id (a plain number, no foreign key: the patient is gone), who
    and when, and counts (`{"rows": {table: n}, "files": n, "bytes": n}`). No names, no health data: this
    row and the audit event are what is left of the patient.

    One per patient (unique): of two purges of the same patient, however they race, one commits.
    """

    __tablename__ = "record_purges"
    __table_args__ = (UniqueConstraint("tenant_id", "patient_id", name="uq_record_purges_patient"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(Integer)
    purged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    purged_by_user_id: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    files_deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class PurgedFile(TenantScoped, db.Model):
    """A stored object of a purged patient still to delete from storage: written in the purge's
    transaction, deleted once the object is gone. The rows that pointed at it are already deleted, so a
    crash between the commit and the storage call leaves only this work list (retried by the job and the
    nightly sweep), never a row pointing at a missing file and never a purge without its trace. The key
    may carry a file name, so it lives here only until the object is deleted, not in `RecordPurge`.
    """

    __tablename__ = "purged_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    purge_id: Mapped[int] = mapped_column(ForeignKey("record_purges.id"), index=True)
    storage_key: Mapped[str] = mapped_column(String(1024))
