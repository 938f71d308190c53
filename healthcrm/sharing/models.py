"""Share links: a patient (or staff for them) gives an outside provider a link to chosen records.

Only the SHA-256 of a link's token is stored (`ShareToken`); the token itself exists in the email and,
once, on the page that created it. Counters (opens, downloads, failed passcodes in a row) change only
through single UPDATE statements with their limit in the WHERE clause, so parallel requests are counted
exactly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

# What a share can cover.
SCOPE_ALL = "all"  # the complete profile
SCOPE_TYPES = "types"  # chosen record types
SCOPE_RECORDS = "records"  # chosen individual records
RECORD_TYPES = {
    "visits": "Visit records",
    "labs": "Lab results",
    "imaging": "Imaging",
    "vaccinations": "Vaccinations",
    "allergies": "Allergies",
    "prescriptions": "Prescriptions",
    "attachments": "Attachments",
}

# Access log events.
EVENT_OPEN = "open"
EVENT_PASSCODE_FAILED = "passcode_failed"
EVENT_PASSCODE_OK = "passcode_ok"
EVENT_CODE_SENT = "code_sent"
EVENT_CODE_VERIFIED = "code_verified"
EVENT_CODE_FAILED = "code_failed"
EVENT_VIEW = "view"
EVENT_DOWNLOAD = "download"
EVENT_EXPORT = "export"
EVENT_PAUSED = "paused"
EVENT_LABELS = {
    EVENT_OPEN: "Opened the link",
    EVENT_PASSCODE_FAILED: "Wrong passcode",
    EVENT_PASSCODE_OK: "Passcode accepted",
    EVENT_CODE_SENT: "Email code sent",
    EVENT_CODE_VERIFIED: "Email code verified",
    EVENT_CODE_FAILED: "Wrong email code",
    EVENT_VIEW: "Viewed",
    EVENT_DOWNLOAD: "Downloaded a file",
    EVENT_EXPORT: "Exported",
    EVENT_PAUSED: "Paused after wrong passcodes",
}


class ShareLink(TenantScoped, db.Model):
    __tablename__ = "share_links"
    __table_args__ = (Index("ix_share_links_tenant_patient", "tenant_id", "patient_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_staff: Mapped[bool] = mapped_column(Boolean, default=False)  # staff on the patient's behalf
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_email: Mapped[str] = mapped_column(String(254))
    message: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(20))
    scope_types: Mapped[list | None] = mapped_column(JSON)  # for SCOPE_TYPES
    scope_record_ids: Mapped[list | None] = mapped_column(JSON)  # for SCOPE_RECORDS
    allow_download: Mapped[bool] = mapped_column(Boolean, default=False)
    passcode_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id
    verify_email: Mapped[bool] = mapped_column(Boolean, default=False)
    max_opens: Mapped[int | None] = mapped_column(Integer)
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    failed_passcodes: Mapped[int] = mapped_column(Integer, default=0)  # in a row; reset by a right one
    paused_until: Mapped[datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    expired_marked_at: Mapped[datetime | None] = mapped_column(DateTime)  # set by the sweep job
    first_opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_access_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    patient = relationship("Patient")
    created_by = relationship("User")
    events: Mapped[list[ShareEvent]] = relationship(
        back_populates="share", order_by="ShareEvent.id.desc()", cascade="all, delete-orphan"
    )

    def status(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.max_opens is not None and self.opens >= self.max_opens:
            return "used up"
        if self.paused_until and self.paused_until > now:
            return "paused"
        return "active"


class ShareToken(TenantScoped, db.Model):
    """The SHA-256 of a token that opens a share: the one shown when it was created, and the emailed one
    (made by the email job; "send again" replaces it). The token itself is stored nowhere."""

    __tablename__ = "share_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("share_links.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    emailed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShareEvent(TenantScoped, db.Model):
    """The share's access log: every open, passcode failure, code, view, download and export."""

    __tablename__ = "share_events"
    __table_args__ = (Index("ix_share_events_share", "share_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("share_links.id"))
    kind: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    occurred_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    share: Mapped[ShareLink] = relationship(back_populates="events")

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.kind, self.kind)


class ShareCode(TenantScoped, db.Model):
    """A one-time code emailed to the recipient (hashed; 10 minutes; single use)."""

    __tablename__ = "share_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("share_links.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShareVisit(TenantScoped, db.Model):
    """A provider's browser that passed the share's checks: a random cookie (its hash stored here), valid
    for a few hours and only for this share."""

    __tablename__ = "share_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("share_links.id"), index=True)
    cookie_hash: Mapped[str] = mapped_column(String(64), unique=True)
    passcode_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    email_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    opened: Mapped[bool] = mapped_column(Boolean, default=False)  # counted as one open
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


# Notifications are the portal's (one table for every kind); sharing writes "share" ones.
from ..portal.models import Notification  # noqa: E402, F401
