"""The daily storage metrics: per clinic and clinic day, what the store holds and what the app asked of it.

Computed from the database, never by listing the bucket (a listing of a million objects is a thousand
LIST requests and minutes; the tables know every version's size, stored size and class already):

- objects, bytes original and stored, per storage class × object-size bucket: ONE grouped scan of the
  clinic's attachment_versions, which also counts the day's PUTs (versions written that day, plus their
  preview and DICOM frame objects) in the same pass;
- GETs: the day's rows of file_access_log (views and downloads);
- restores: the day's `file.restore_requested` audit events, and the stored bytes of their versions.

`record_day` upserts the row (INSERT … ON CONFLICT (tenant_id, day) DO UPDATE), so running it twice, or
two workers at once, leaves one row with the figures of the later run. The daily periodic task
`storage.metrics` records each clinic's today, completes yesterday's request counts (the previous run saw
only part of that day), and then checks the clinic's alert thresholds (alerts.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..accounts.models import Tenant
from ..audit.models import AuditEvent
from ..clock import clinic_day_end, clinic_day_start, clinic_today, utcnow
from ..extensions import db
from ..files.models import ACCESS_DOWNLOAD, ACCESS_VIEW, AttachmentVersion, FileAccess
from ..tenancy import scoped
from ..tenant_scope import all_tenants
from .models import StorageMetric

log = logging.getLogger(__name__)

KB = 1024
MB = 1024 * KB
# Object-size buckets by stored size: (key, label, from bytes inclusive, to bytes exclusive or None).
# 128 KB is S3's line twice over: the IA classes bill smaller objects as 128 KB, and Intelligent-Tiering
# neither monitors nor moves them.
SIZE_BUCKETS: tuple[tuple[str, str, int, int | None], ...] = (
    ("lt_128k", "under 128 KB", 0, 128 * KB),
    ("128k_1m", "128 KB – 1 MB", 128 * KB, MB),
    ("1m_10m", "1 – 10 MB", MB, 10 * MB),
    ("10m_100m", "10 – 100 MB", 10 * MB, 100 * MB),
    ("ge_100m", "100 MB or more", 100 * MB, None),
)
BUCKET_KEYS = tuple(bucket[0] for bucket in SIZE_BUCKETS)
BUCKET_LABELS = {bucket[0]: bucket[1] for bucket in SIZE_BUCKETS}
RESTORE_REQUESTED = "file.restore_requested"
# The upsert is a Core statement: a row already in the session must be read again, not reused.
_FRESH = {"populate_existing": True}


@dataclass
class DayFigures:
    """One clinic day's figures, as `StorageMetric` keeps them."""

    objects: int = 0
    bytes_original: int = 0
    bytes_stored: int = 0
    breakdown: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    puts: int = 0
    views: int = 0
    downloads: int = 0
    restores: int = 0
    retrieved_bytes: int = 0
    restores_by_class: dict[str, list[int]] = field(default_factory=dict)

    def requests(self) -> dict:
        """The request columns alone (for completing an earlier day's row)."""
        return {
            "puts": self.puts,
            "views": self.views,
            "downloads": self.downloads,
            "restores": self.restores,
            "retrieved_bytes": self.retrieved_bytes,
            "restores_by_class": self.restores_by_class,
        }


def _bucket_of(size_column):
    """The size bucket of a stored size, as a CASE the database evaluates in the scan."""
    return case(
        *[(size_column < upper, key) for key, _, _, upper in SIZE_BUCKETS if upper is not None],
        else_=SIZE_BUCKETS[-1][0],
    )


def _during(column, starts, ends):
    return and_(column >= starts, column < ends)


def _day_of(column, bounds: list):
    """Which of the days (0, 1, …) between consecutive `bounds` the time falls in; NULL outside them."""
    return case(*[(_during(column, bounds[i], bounds[i + 1]), i) for i in range(len(bounds) - 1)], else_=None)


def compute_days(tenant_id: int, day: date, zone: str | None, *, also_before: int = 0) -> list[DayFigures]:
    """The figures of `day` (the clinic's calendar day in `zone`): the store as it is now and the requests
    of that day; and, for the `also_before` days before it, their requests alone (objects and bytes are
    only known for now). Oldest first, `day` last. Reads only: three aggregate queries, one scan of the
    clinic's versions whatever the number of days."""
    days = [day - timedelta(days=n) for n in range(also_before, -1, -1)]
    bounds = [clinic_day_start(d, zone) for d in days] + [clinic_day_end(day, zone)]
    found = [DayFigures() for _ in days]
    figures = found[-1]
    version = AttachmentVersion
    bucket = _bucket_of(version.stored_size).label("bucket")

    def written_on(index: int):
        # The objects a new version writes: itself, its preview, and a DICOM's first frame as PNG.
        written = _during(version.created_at, bounds[index], bounds[index + 1])
        return func.coalesce(
            func.sum(
                case((written, 1), else_=0)
                + case((and_(written, version.preview_key.is_not(None)), 1), else_=0)
                + case((and_(written, version.image_key.is_not(None)), 1), else_=0)
            ),
            0,
        )

    rows = db.session.execute(
        select(
            version.storage_class,
            bucket,
            func.count(),
            func.coalesce(func.sum(version.stored_size), 0),
            func.coalesce(func.sum(version.size), 0),
            *[written_on(index) for index in range(len(days))],
        )
        .where(version.tenant_id == tenant_id)
        .group_by(version.storage_class, bucket)
    )
    for storage_class, key, count, stored, original, *written in rows:
        figures.breakdown.setdefault(storage_class, {})[key] = [int(count), int(stored), int(original)]
        figures.objects += int(count)
        figures.bytes_stored += int(stored)
        figures.bytes_original += int(original)
        for index, objects in enumerate(written):
            found[index].puts += int(objects)

    accessed_on = _day_of(FileAccess.occurred_at, bounds).label("on_day")
    access = db.session.execute(
        select(accessed_on, FileAccess.action, func.count())
        .where(FileAccess.tenant_id == tenant_id, _during(FileAccess.occurred_at, bounds[0], bounds[-1]))
        .group_by(accessed_on, FileAccess.action)
    )
    for index, action, count in access:
        if action == ACCESS_VIEW:
            found[index].views += int(count)
        elif action == ACCESS_DOWNLOAD:
            found[index].downloads += int(count)

    # The day's restore events are few: read their version ids, then the versions by primary key (a join
    # on the audit log's text resource_id would compare every version's id as text).
    requested_on = _day_of(AuditEvent.occurred_at, bounds).label("on_day")
    events = db.session.execute(
        select(requested_on, AuditEvent.resource_id).where(
            AuditEvent.tenant_id == tenant_id,
            AuditEvent.action == RESTORE_REQUESTED,
            AuditEvent.resource_type == "attachment_version",
            _during(AuditEvent.occurred_at, bounds[0], bounds[-1]),
        )
    ).all()
    ids = {int(resource_id) for _, resource_id in events if resource_id and resource_id.isdigit()}
    restored: dict[int, tuple[str, int]] = {}
    for start in range(0, len(ids), 500):
        chunk = sorted(ids)[start : start + 500]
        restored.update(
            (version_id, (storage_class, stored))
            for version_id, storage_class, stored in db.session.execute(
                select(version.id, version.storage_class, version.stored_size).where(
                    version.tenant_id == tenant_id, version.id.in_(chunk)
                )
            )
        )
    for index, resource_id in events:
        found_version = restored.get(int(resource_id)) if resource_id and resource_id.isdigit() else None
        if found_version is None:
            continue
        storage_class, stored = found_version
        entry = found[index]
        counts = entry.restores_by_class.setdefault(storage_class, [0, 0])
        counts[0] += 1
        counts[1] += int(stored)
        entry.restores += 1
        entry.retrieved_bytes += int(stored)
    return found


def compute_day(tenant_id: int, day: date, zone: str | None) -> DayFigures:
    """The figures of one clinic day (see compute_days)."""
    return compute_days(tenant_id, day, zone)[-1]


def _upsert(tenant_id: int, day: date, figures: DayFigures) -> None:
    values = {
        "objects": figures.objects,
        "bytes_original": figures.bytes_original,
        "bytes_stored": figures.bytes_stored,
        "breakdown": figures.breakdown,
        "puts": figures.puts,
        "views": figures.views,
        "downloads": figures.downloads,
        "restores": figures.restores,
        "retrieved_bytes": figures.retrieved_bytes,
        "restores_by_class": figures.restores_by_class,
        "recorded_at": utcnow(),
    }
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(StorageMetric.__table__).values(tenant_id=tenant_id, day=day, **values)
    # Of two workers recording the same day, the second updates the first's row (on PostgreSQL it waits
    # for the first's commit): one row, never a unique-key error.
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "day"], set_={name: statement.excluded[name] for name in values}
        )
    )


def record_day(tenant_id: int, day: date | None = None) -> StorageMetric:
    """Compute and keep one clinic day's figures (today in the clinic's zone by default); commits.
    Idempotent: the same day again replaces the row's figures with fresh ones."""
    tenant = db.session.get(Tenant, tenant_id)
    zone = tenant.timezone if tenant else None
    day = day or clinic_today(zone)
    _upsert(tenant_id, day, compute_day(tenant_id, day, zone))
    db.session.commit()
    return db.session.scalar(
        scoped(StorageMetric, tenant_id).where(StorageMetric.day == day), execution_options=_FRESH
    )


def record_clinic(tenant_id: int) -> StorageMetric:
    """The job's work for one clinic: today recorded, yesterday's requests completed (the previous run saw
    only part of that day), thresholds checked; commits."""
    from .alerts import check_thresholds  # noqa: PLC0415 - alerts reads this module's rows

    tenant = db.session.get(Tenant, tenant_id)
    zone = tenant.timezone if tenant else None
    today = clinic_today(zone)
    yesterday, figures = compute_days(tenant_id, today, zone, also_before=1)
    db.session.execute(
        update(StorageMetric)
        .where(StorageMetric.tenant_id == tenant_id, StorageMetric.day == today - timedelta(days=1))
        .values(**yesterday.requests())
    )
    _upsert(tenant_id, today, figures)
    db.session.commit()
    check_thresholds(tenant_id, today)
    return db.session.scalar(
        scoped(StorageMetric, tenant_id).where(StorageMetric.day == today), execution_options=_FRESH
    )


def record_all_clinics() -> str:
    """Periodic (daily): every clinic's metrics for its today, then its alerts."""
    with all_tenants("the daily metrics job visits every clinic"):
        tenant_ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
    for tenant_id in tenant_ids:
        record_clinic(tenant_id)
    return f"storage metrics recorded for {len(tenant_ids)} clinics"


def series(tenant_id: int, last_day: date, days: int) -> list[StorageMetric]:
    """The clinic's rows of the `days` days up to `last_day`, oldest first (a day without figures: no row)."""
    first = last_day - timedelta(days=days - 1)
    return list(
        db.session.scalars(
            scoped(StorageMetric, tenant_id)
            .where(StorageMetric.day >= first, StorageMetric.day <= last_day)
            .order_by(StorageMetric.day)
        )
    )


def latest(tenant_id: int) -> StorageMetric | None:
    """The clinic's newest row."""
    return db.session.scalar(scoped(StorageMetric, tenant_id).order_by(StorageMetric.day.desc()).limit(1))
