"""Demo storage: files of several ages and storage classes on the clinic's finalized records (some opened,
most never again), a year of daily storage metrics growing to today's real figures with the lifecycle's
tiering kicking in, and alert thresholds an admin can lower below the current figures.

The files are small (a few KB to a few hundred KB: `flask demo` stays fast), so the clinic's real bill is
small too; the history is drawn to end at exactly what the metrics job finds today, so the job's next run
continues the trend instead of breaking it. Files older than 90 days sit in GLACIER and older than 180
days in DEEP_ARCHIVE, in the store as well (`set_storage_class`), so opening one starts a restore.
Written in the seeding transaction: flushes, never commits.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
from datetime import timedelta
from itertools import pairwise

from flask import current_app
from sqlalchemy import select

from ..accounts.models import ADMIN, DOCTOR, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import clinic_today, utcnow
from ..extensions import db
from ..files.models import PREVIEW_NONE, SCAN_NOT_SCANNED, Attachment, AttachmentVersion, FileAccess
from ..files.storage import get_storage, make_key
from ..files.uploads import name_key
from ..records.models import FINALIZED, MedicalRecord
from ..storage_cost import metrics
from ..storage_cost.costs import month_cost, usage_of
from ..storage_cost.models import MICRO, MONTHLY_COST, TOTAL_STORED, StorageMetric, StorageThreshold
from ..storage_cost.prices import load_prices

FILES = 30
MB = 1024 * 1024
HISTORY_DAYS = 365
# The lifecycle rules started this many days ago: before, everything was in the upload classes.
TIERING_STARTED_DAYS_AGO = 150
KINDS = (
    ("Scanned referral.txt", "text", "text/plain"),
    ("Lab report.csv", "csv", "text/csv"),
    ("Discharge letter.txt", "text", "text/plain"),
)


def _class_for_age(days: int, rng: random.Random) -> str:
    if days >= 180:
        return "DEEP_ARCHIVE"
    if days >= 90:
        return "GLACIER"
    return "INTELLIGENT_TIERING" if rng.random() < 0.8 else "STANDARD"


POOL_LINES = 30_000


def _pool(rng: random.Random) -> list[str]:
    """Lines of figures the files are cut from (made once: drawing each file's own would slow the demo)."""
    return [f"{n},{rng.randint(1, 999)},{rng.random():.6f}" for n in range(POOL_LINES)]


def _content(name: str, index: int, pool: list[str], rng: random.Random) -> bytes:
    # 120 to 600 KB of figures: text compresses to about half, as the clinic's real text files do.
    length = rng.randint(6_000, POOL_LINES)
    start = rng.randint(0, POOL_LINES - length)
    return ("\n".join([f"{name} — demo document {index}", *pool[start : start + length]]) + "\n").encode()


def _add_files(tenant: Tenant, staff: dict[str, User], rng: random.Random) -> list[AttachmentVersion]:
    records = list(
        db.session.scalars(
            select(MedicalRecord)
            .where(MedicalRecord.tenant_id == tenant.id, MedicalRecord.status == FINALIZED)
            .order_by(MedicalRecord.visit_at)
        )
    )
    if not records:
        return []
    storage = get_storage(current_app)
    now = utcnow()
    doctor = staff[DOCTOR]
    versions = []
    pool = _pool(rng)
    for index in range(FILES):
        record = records[(index * 7) % len(records)]
        days = max(1, int((now - record.visit_at).days)) if record.visit_at < now else 1
        uploaded = now - timedelta(days=days, hours=rng.randint(0, 8))
        name, kind, content_type = KINDS[index % len(KINDS)]
        filename = f"{name.rsplit('.', 1)[0]} {index + 1}.{name.rsplit('.', 1)[1]}"
        data = _content(name, index, pool, rng)
        packed = gzip.compress(data, compresslevel=1, mtime=0)
        key = make_key(tenant.id, f"record-{record.id}", filename) + ".gz"
        stored = storage.put_stream(key, io.BytesIO(packed), content_type, content_encoding="gzip")
        storage_class = _class_for_age(days, rng)
        if storage_class != "STANDARD":
            storage.set_storage_class(key, storage_class)
        digest = hashlib.sha256(data).hexdigest()
        attachment = Attachment(
            tenant_id=tenant.id, record_id=record.id, patient_id=record.patient_id, filename=filename,
            name_key=name_key(filename), created_by_id=doctor.id, created_at=uploaded, updated_at=uploaded,
        )  # fmt: skip
        db.session.add(attachment)
        db.session.flush()
        version = AttachmentVersion(
            tenant_id=tenant.id, attachment=attachment, number=1, storage_key=key, original_name=filename,
            kind=kind, content_type=content_type, size=len(data), stored_size=len(packed), compression="gzip",
            sha256=digest, stored_sha256=hashlib.sha256(packed).hexdigest(), stored_etag=stored.etag,
            storage_class=storage_class,
            scan_status=SCAN_NOT_SCANNED, preview_status=PREVIEW_NONE, uploaded_by_id=doctor.id,
            created_at=uploaded,
        )  # fmt: skip
        db.session.add(version)
        db.session.flush()
        attachment.current_version_id = version.id
        record.attachment_count = (record.attachment_count or 0) + 1
        # Opened in its first days, and a few again later: most files go cold, as in a real clinic.
        for _ in range(rng.randint(0, 3)):
            db.session.add(_access(version, doctor, uploaded + timedelta(hours=rng.randint(1, 72)), rng))
        if rng.random() < 0.3:
            later = min(now, uploaded + timedelta(days=rng.randint(20, max(21, days))))
            db.session.add(_access(version, doctor, later, rng))
        record_event(
            Actor(tenant_id=tenant.id, user_id=doctor.id, role=doctor.role),
            "attachment.upload",
            resource_type="attachment",
            resource_id=attachment.id,
            patient_id=record.patient_id,
        )
        versions.append(version)
    db.session.flush()
    return versions


def _access(version: AttachmentVersion, user: User, when, rng: random.Random) -> FileAccess:
    return FileAccess(
        tenant_id=version.tenant_id, attachment_id=version.attachment_id, version_id=version.id,
        user_id=user.id, action="view" if rng.random() < 0.8 else "download", occurred_at=when,
    )  # fmt: skip


def _history(tenant: Tenant, today_figures: metrics.DayFigures, rng: random.Random) -> list[StorageMetric]:
    """A year of rows ending yesterday, growing to today's figures; before the tiering started, what is
    archived today was still in Intelligent-Tiering, then moves across day by day."""
    today = clinic_today(tenant.timezone)
    rows = []
    archived = {"GLACIER", "DEEP_ARCHIVE"}
    for days_ago in range(HISTORY_DAYS, 0, -1):
        grown = 0.3 + 0.7 * (HISTORY_DAYS - days_ago) / HISTORY_DAYS
        tiered = max(0.0, min(1.0, 1 - days_ago / TIERING_STARTED_DAYS_AGO))
        breakdown: dict[str, dict[str, list[int]]] = {}
        for storage_class, buckets in today_figures.breakdown.items():
            for bucket, (count, stored, original) in buckets.items():
                scaled = [round(count * grown), round(stored * grown), round(original * grown)]
                parts = [(storage_class, 1.0)]
                if storage_class in archived:
                    parts = [(storage_class, tiered), ("INTELLIGENT_TIERING", 1 - tiered)]
                for name, share in parts:
                    cell = breakdown.setdefault(name, {}).setdefault(bucket, [0, 0, 0])
                    for i in range(3):
                        cell[i] += round(scaled[i] * share)
        breakdown = {
            name: {bucket: cell for bucket, cell in buckets.items() if cell[0]}
            for name, buckets in breakdown.items()
        }
        breakdown = {name: buckets for name, buckets in breakdown.items() if buckets}
        cells = [cell for buckets in breakdown.values() for cell in buckets.values()]
        restores = 1 if rng.random() < 0.03 else 0
        rows.append(
            StorageMetric(
                tenant_id=tenant.id, day=today - timedelta(days=days_ago), breakdown=breakdown,
                objects=sum(c[0] for c in cells), bytes_stored=sum(c[1] for c in cells),
                bytes_original=sum(c[2] for c in cells), puts=0, views=rng.randint(0, 1),
                downloads=int(rng.random() < 0.1), restores=restores, retrieved_bytes=restores * 40_000,
                restores_by_class={"GLACIER": [1, 40_000]} if restores else {},
            )
        )  # fmt: skip
    # The PUTs of a day are the objects it added (the history grows by uploads, nothing else writes).
    for before, row in pairwise(rows):
        row.puts = max(0, row.objects - before.objects)
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _round_up(value) -> int:
    """`value` rounded up to two significant digits (a limit a person would type)."""
    whole = max(int(-(-value // 1)), 1)
    step = 10 ** max(len(str(whole)) - 2, 0)
    return -(-whole // step) * step


def seed(tenant: Tenant, staff: dict[str, User], rng: random.Random) -> int:
    """Add the clinic's demo files, a year of metrics and today's, and two thresholds; flushes only.
    Returns the number of files added."""
    versions = _add_files(tenant, staff, rng)
    today = clinic_today(tenant.timezone)
    figures = metrics.compute_day(tenant.id, today, tenant.timezone)
    history = _history(tenant, figures, rng)
    metrics._upsert(tenant.id, today, figures)
    row = db.session.scalar(
        select(StorageMetric).where(StorageMetric.tenant_id == tenant.id, StorageMetric.day == today)
    )
    month = [r for r in history if r.day > today - timedelta(days=30)] + [row]
    cost = month_cost(usage_of(row, month), load_prices(current_app.config)).total
    admin = staff[ADMIN]
    # Twice today's cost and size: well above; an admin lowers one below to see the alert.
    limits = {MONTHLY_COST: _round_up(cost * 2 * MICRO), TOTAL_STORED: -(-row.bytes_stored * 2 // MB) * MB}
    for kind, limit in limits.items():
        threshold = StorageThreshold(tenant_id=tenant.id, kind=kind, limit_value=limit, above=False,
                                     changed_by_user_id=admin.id)  # fmt: skip
        db.session.add(threshold)
        db.session.flush()
        record_event(
            Actor(tenant_id=tenant.id, user_id=admin.id, role=admin.role),
            "storage.threshold_changed",
            resource_type="storage_threshold",
            resource_id=threshold.id,
            changed_fields=[kind],
        )
    return len(versions)
