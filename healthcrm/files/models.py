"""Attachments on medical records, and the patient's own documents: named files with versions, the uploads
that make them, and who opened them.

An `Attachment` is one named file on a record ("MRI report.pdf"); each upload of that name, or a "replace",
adds an `AttachmentVersion`, and nothing is ever overwritten: versions are rows pointing at their own object
keys. An attachment with no record is a patient document (healthcrm/files/patient_files.py): uploaded by the
patient from the portal or by staff, shown to the patient when `visible_to_patient`.

An `UploadSession` tracks a browser upload from its first byte to the checked version, so an
interrupted multipart upload can resume. `FileAccess` counts every view and download per version.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

# Scan states of a version. Only CLEAN and NOT_SCANNED versions can be opened.
SCAN_PENDING = "pending"
SCAN_CLEAN = "clean"
SCAN_INFECTED = "infected"
SCAN_NOT_SCANNED = "not_scanned"
SCAN_FAILED = "failed"  # clamd could not say; retried by the job, shown as pending to people
SCAN_LABELS = {
    SCAN_PENDING: "Pending scan",
    SCAN_CLEAN: "Scanned, clean",
    SCAN_INFECTED: "Infected, quarantined",
    SCAN_NOT_SCANNED: "Not scanned",
    SCAN_FAILED: "Pending scan",
}
OPENABLE_SCAN_STATES = frozenset({SCAN_CLEAN, SCAN_NOT_SCANNED})

# Upload states.
UPLOADING = "uploading"
UPLOAD_COMPLETING = "completing"  # claimed by one "complete" request while it checks the file
UPLOAD_DONE = "done"
UPLOAD_REJECTED = "rejected"
UPLOAD_ABORTED = "aborted"

# Preview states.
PREVIEW_PENDING = "pending"
PREVIEW_READY = "ready"
PREVIEW_NONE = "none"  # nothing to render (a CSV), or it could not be rendered

# Where a patient document came from (None for a record's attachment).
SOURCE_PORTAL = "portal"  # the patient, on the portal's documents page
SOURCE_MESSAGE = "message"  # the patient, attached to a message
SOURCE_STAFF = "staff"  # staff, on the patient page
PATIENT_SOURCES = frozenset({SOURCE_PORTAL, SOURCE_MESSAGE, SOURCE_STAFF})

ACCESS_VIEW = "view"
ACCESS_DOWNLOAD = "download"


class Attachment(TenantScoped, db.Model):
    __tablename__ = "attachments"
    __table_args__ = (
        # One attachment per name per record: a second upload of the name is a new version of it.
        UniqueConstraint("record_id", "name_key", name="uq_attachments_record_name"),
        # Likewise one patient document per name per patient (NULL record ids never clash in the one above).
        Index(
            "uq_attachments_patient_document_name",
            "patient_id",
            "name_key",
            unique=True,
            sqlite_where=text("record_id IS NULL"),
            postgresql_where=text("record_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: a patient document, kept on the patient rather than on a visit.
    record_id: Mapped[int | None] = mapped_column(ForeignKey("medical_records.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255))  # the name folded for comparison
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("attachment_versions.id", use_alter=True, name="fk_attachments_current_version")
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Patient documents only: where it came from (SOURCE_*), and whether the patient sees it (their own
    # uploads: yes; staff's: once staff mark it visible).
    source: Mapped[str | None] = mapped_column(String(20))
    visible_to_patient: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    record = relationship("MedicalRecord")
    current_version: Mapped[AttachmentVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )
    versions: Mapped[list[AttachmentVersion]] = relationship(
        foreign_keys="AttachmentVersion.attachment_id",
        back_populates="attachment",
        order_by="AttachmentVersion.number.desc()",
        cascade="all, delete-orphan",
    )

    @property
    def is_patient_document(self) -> bool:
        return self.record_id is None

    @property
    def uploaded_by_patient(self) -> bool:
        return self.source in (SOURCE_PORTAL, SOURCE_MESSAGE)


class AttachmentVersion(TenantScoped, db.Model):
    __tablename__ = "attachment_versions"
    __table_args__ = (UniqueConstraint("attachment_id", "number", name="uq_attachment_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(1024))
    original_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))  # pdf, jpeg, png, heic, tiff, dicom, text, csv
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)  # the file's own size
    stored_size: Mapped[int] = mapped_column(BigInteger)  # what the store holds (smaller when compressed)
    compression: Mapped[str | None] = mapped_column(String(10))  # "gzip" or None
    sha256: Mapped[str] = mapped_column(String(64))  # of the file's own bytes
    stored_sha256: Mapped[str] = mapped_column(String(64))  # of the stored bytes
    stored_etag: Mapped[str | None] = mapped_column(String(100))
    storage_class: Mapped[str] = mapped_column(String(30), default="STANDARD")
    scan_status: Mapped[str] = mapped_column(String(20), default=SCAN_PENDING)
    scan_signature: Mapped[str | None] = mapped_column(String(200))
    scanned_at: Mapped[datetime | None] = mapped_column(DateTime)
    preview_status: Mapped[str] = mapped_column(String(20), default=PREVIEW_PENDING)
    preview_key: Mapped[str | None] = mapped_column(String(1024))
    image_key: Mapped[str | None] = mapped_column(String(1024))  # DICOM: the first frame as PNG
    details: Mapped[dict | None] = mapped_column(JSON)  # DICOM metadata
    restored_from_id: Mapped[int | None] = mapped_column(ForeignKey("attachment_versions.id"))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    attachment: Mapped[Attachment] = relationship(foreign_keys=[attachment_id], back_populates="versions")
    uploaded_by = relationship("User")
    restored_from: Mapped[AttachmentVersion | None] = relationship(remote_side=[id])

    @property
    def openable(self) -> bool:
        return self.scan_status in OPENABLE_SCAN_STATES

    @property
    def scan_label(self) -> str:
        return SCAN_LABELS.get(self.scan_status, self.scan_status)

    @property
    def compression_ratio(self) -> float | None:
        """Stored size over the file's size (0.25 = stored in a quarter of the space)."""
        return round(self.stored_size / self.size, 3) if self.compression and self.size else None


class UploadSession(TenantScoped, db.Model):
    __tablename__ = "upload_sessions"
    __table_args__ = (Index("ix_upload_sessions_record_status", "record_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # random; what URLs carry
    record_id: Mapped[int] = mapped_column(ForeignKey("medical_records.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)  # as declared by the browser; checked at the end
    claimed_type: Mapped[str | None] = mapped_column(String(100))  # the browser's claim, never trusted
    fingerprint: Mapped[str] = mapped_column(String(300))  # name, size, modification time: finds it again
    storage_key: Mapped[str] = mapped_column(String(1024))
    multipart_id: Mapped[str | None] = mapped_column(String(255))  # the store's upload id
    part_size: Mapped[int | None] = mapped_column(BigInteger)
    replace_attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachments.id"))
    status: Mapped[str] = mapped_column(String(20), default=UPLOADING)
    error: Mapped[str | None] = mapped_column(String(500))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("attachment_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    version: Mapped[AttachmentVersion | None] = relationship()


class FileAccess(TenantScoped, db.Model):
    """One view or download of a version: who, when, how (for access patterns and storage cost)."""

    __tablename__ = "file_access_log"
    __table_args__ = (Index("ix_file_access_version_time", "version_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("attachment_versions.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(20))  # view or download
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    occurred_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user = relationship("User")
