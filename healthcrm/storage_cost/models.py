"""The storage cost area's tables (restores and sweeps are in `restore_models.py`).

The lifecycle's own tables: each clinic's settings, and which stored versions carry `archive=allowed`.

`LifecycleSettings` holds what a clinic asks of the bucket's lifecycle rules (no row: the defaults).
`ArchiveTag` mirrors the object tag the app writes: a row exists exactly while the version's object is
tagged `archive=allowed` (the lifecycle rule's filter). It is written before the tag and deleted after the
tag is removed, so a crash in between leaves a row whose object may lack the tag, never a tagged object the
app does not know of; the daily job (`storage.tags`) compares it with what the rules want and writes only
the difference.

The storage metrics time series, the admins' alert thresholds and the alerts they raised.

`StorageMetric` is one row per clinic and clinic day, written by the daily `storage.metrics` job with an
upsert on (tenant_id, day): two workers recording the same day leave one row. Its `breakdown` keeps the
objects and bytes per storage class and object-size bucket together, so every cost rule that depends on
both (the 128 KB minimum of the IA classes, Intelligent-Tiering's monitoring fee for objects of 128 KB
or more) is computed from the row alone, with whatever price table is in force.

`StorageThreshold` is one limit per clinic and kind; `above` is its state (raised, not yet back below),
changed only by guarded UPDATEs, so a crossing alerts once however many jobs see it. `StorageAlert` is the
history: one row per crossing, with the email's claim.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    true,
)
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


# Threshold kinds, with the unit their `limit_value` is kept in.
MONTHLY_COST = "monthly_cost"  # millionths of a US dollar (the price table's currency)
TOTAL_STORED = "total_stored"  # bytes stored
WEEKLY_GROWTH = "weekly_growth"  # bytes stored more than 7 days before
THRESHOLD_KINDS = (MONTHLY_COST, TOTAL_STORED, WEEKLY_GROWTH)
MICRO = 1_000_000


class StorageMetric(TenantScoped, db.Model):
    """What one clinic stored at the end of one of its days, and the requests the app made that day."""

    __tablename__ = "storage_metrics"
    __table_args__ = (UniqueConstraint("tenant_id", "day", name="uq_storage_metrics_tenant_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)  # the clinic's calendar day
    objects: Mapped[int] = mapped_column(BigInteger, default=0)  # file versions (one object each)
    bytes_original: Mapped[int] = mapped_column(BigInteger, default=0)  # the files' own sizes
    bytes_stored: Mapped[int] = mapped_column(BigInteger, default=0)  # what the store holds (compressed)
    # {storage class: {size bucket: [objects, bytes stored, bytes original]}}
    breakdown: Mapped[dict] = mapped_column(JSON, default=dict)
    puts: Mapped[int] = mapped_column(BigInteger, default=0)  # versions and previews written that day
    views: Mapped[int] = mapped_column(BigInteger, default=0)  # file_access_log views that day
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    restores: Mapped[int] = mapped_column(BigInteger, default=0)  # file.restore_requested events that day
    retrieved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # stored bytes of those versions
    # {storage class: [restores, bytes]} (retrieval is priced per class)
    restores_by_class: Mapped[dict] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def gets(self) -> int:
        return self.views + self.downloads


class StorageThreshold(TenantScoped, db.Model):
    """An admin's limit for one figure of the clinic's storage; `above` while it stays crossed."""

    __tablename__ = "storage_thresholds"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", name="uq_storage_thresholds_tenant_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # In the kind's unit (see THRESHOLD_KINDS); None when the admins turned it off.
    limit_value: Mapped[int | None] = mapped_column(BigInteger)
    above: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    changed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class StorageAlert(TenantScoped, db.Model):
    """One crossing of a threshold: when, at what figure, and when it went back below."""

    __tablename__ = "storage_alerts"
    __table_args__ = (Index("ix_storage_alerts_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    threshold_id: Mapped[int] = mapped_column(ForeignKey("storage_thresholds.id"))
    kind: Mapped[str] = mapped_column(String(20))
    limit_value: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(BigInteger)  # the figure that crossed it, in the kind's unit
    day: Mapped[date] = mapped_column(Date)
    crossed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime)  # claimed once, before sending
