"""The tables of restores and sweeps: a `FileRestore` per request to bring an archived version back (one
active at a time per version, kept by a unique partial index), and a `StorageSweep` per run of the sweeper
(what it found in a clinic's storage, and what it aborted).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

# A restore's life: PENDING (asked; `started_at` once the store was asked) → READY (a readable copy exists
# until `expires_at`) → EXPIRED (the copy is gone: the file is archived again). FAILED: the store could not
# restore it (the object is missing). CLOSED: the file left the archive class, no copy is needed.
PENDING = "pending"
READY = "ready"
EXPIRED = "expired"
FAILED = "failed"
CLOSED = "closed"
ACTIVE_STATES = (PENDING, READY)
STATUS_LABELS = {
    PENDING: "Being retrieved",
    READY: "Retrieved",
    EXPIRED: "Archived again",
    FAILED: "Could not be retrieved",
    CLOSED: "No longer archived",
}
# The unique index's condition, in both dialects' SQL (and the ON CONFLICT target's).
ACTIVE_CONDITION = "status IN ('pending', 'ready')"

# Who asked: a member of staff, the patient in the portal, or the recipient of a share link.
VIA_STAFF = "staff"
VIA_PORTAL = "portal"
VIA_SHARE = "share"


class FileRestore(TenantScoped, db.Model):
    """One request to bring an archived version back for a few days, at a retrieval tier."""

    __tablename__ = "file_restores"
    __table_args__ = (
        # One active restore per version: two clicks at once (or a patient and a doctor) start one.
        Index(
            "uq_file_restores_active_version",
            "version_id",
            unique=True,
            sqlite_where=text(ACTIVE_CONDITION),
            postgresql_where=text(ACTIVE_CONDITION),
        ),
        Index("ix_file_restores_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("attachment_versions.id"))
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    tier: Mapped[str] = mapped_column(String(20))  # Expedited, Standard, Bulk
    days: Mapped[int] = mapped_column(Integer)  # how long the restored copy is kept
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    via: Mapped[str] = mapped_column(String(20))  # VIA_*
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: a share's recipient
    share_id: Mapped[int | None] = mapped_column(ForeignKey("share_links.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)  # the store was asked
    expected_ready_at: Mapped[datetime] = mapped_column(DateTime)
    ready_at: Mapped[datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)  # the restored copy's end
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)  # expired, failed or closed
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime)  # the "ready" email, claimed once
    error: Mapped[str | None] = mapped_column(String(300))

    version = relationship("AttachmentVersion")
    attachment = relationship("Attachment")
    requested_by = relationship("User")
    share = relationship("ShareLink")

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)


class StorageSweep(TenantScoped, db.Model):
    """One run of the sweeper over a clinic's storage: counts by area, what it aborted, what it found
    (orphans: stored, named by no row; missing: named by a row, not stored), the first keys of each kind,
    and a digest of all of them (to tell a new finding from the same one seen again)."""

    __tablename__ = "storage_sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    objects: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    open_uploads: Mapped[int] = mapped_column(Integer, default=0)
    aborted_uploads: Mapped[int] = mapped_column(Integer, default=0)
    orphans: Mapped[int] = mapped_column(Integer, default=0)
    orphan_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)
    too_new: Mapped[int] = mapped_column(Integer, default=0)  # objects younger than the grace, not judged
    # {area: {"objects": n, "bytes": n, "judged": bool}}
    areas: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"aborted": [key, …], "orphans": [[key, size], …], "missing": [[key, what], …]}: the first few
    samples: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"orphans": sha256, "missing": sha256} over every key of the kind, in key order
    digests: Mapped[dict] = mapped_column(JSON, default=dict)
    new_findings: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(String(500))
