"""The lifecycle's own tables: each clinic's settings, and which stored versions carry `archive=allowed`.

`LifecycleSettings` holds what a clinic asks of the bucket's lifecycle rules (no row: the defaults).
`ArchiveTag` mirrors the object tag the app writes: a row exists exactly while the version's object is
tagged `archive=allowed` (the lifecycle rule's filter). It is written before the tag and deleted after the
tag is removed, so a crash in between leaves a row whose object may lack the tag, never a tagged object the
app does not know of; the daily job (`storage.tags`) compares it with what the rules want and writes only
the difference.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped

GLACIER_DAYS_DEFAULT = 90
DEEP_ARCHIVE_DAYS_DEFAULT = 180
RECENT_DAYS_DEFAULT = 30


class LifecycleSettings(TenantScoped, db.Model):
    """When a clinic's files move to GLACIER and DEEP_ARCHIVE (days after upload), how long a file counts
    as recently opened (kept out of archiving), and whether archiving is on at all."""

    __tablename__ = "lifecycle_settings"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_lifecycle_settings_tenant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    glacier_days: Mapped[int] = mapped_column(Integer, default=GLACIER_DAYS_DEFAULT)
    deep_archive_days: Mapped[int] = mapped_column(Integer, default=DEEP_ARCHIVE_DAYS_DEFAULT)
    recent_days: Mapped[int] = mapped_column(Integer, default=RECENT_DAYS_DEFAULT)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_by_user_id: Mapped[int | None] = mapped_column(Integer)


class ArchiveTag(TenantScoped, db.Model):
    """A version whose stored object is tagged `archive=allowed` (see the module's docstring)."""

    __tablename__ = "archive_tags"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("attachment_versions.id", ondelete="CASCADE"), primary_key=True
    )
    tagged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
