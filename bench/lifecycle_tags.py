"""Benchmark of the daily `storage.tags` job and the rule checker for one big clinic, against a bare
`SELECT count(*), sum(stored_size)` of the same clinic's versions in the same run.

    .venv/bin/python bench/lifecycle_tags.py [--versions 200000]

Seeds one clinic (Core executemany inserts) with `--versions` attachment versions (one attachment each) on
records of which a tenth are drafts, sizes from 16 KB to 4 MB, a tenth opened in the last 30 days and a
patient in a hundred on legal hold. The store is an in-memory stand-in (tag reads and writes cost nothing),
so the times are the job's own: its queries, batches and bookkeeping. It times the first run (tags every
version that may be archived), the second (writes nothing: what the job costs each day when nothing
changed) and `check_rules`.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are recreated).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from pages import analyze, bench_app, migrate_fresh
from sqlalchemy import func, insert, select

from healthcrm.accounts.models import DOCTOR, Tenant, User
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.files.models import Attachment, AttachmentVersion, FileAccess
from healthcrm.files.storage import STORAGE_EXTENSION
from healthcrm.patients.models import Patient
from healthcrm.records.models import MedicalRecord
from healthcrm.retention.models import LegalHold
from healthcrm.storage_cost.checker import check_rules
from healthcrm.storage_cost.tags import retag_clinic

BATCH_ROWS = 10_000
VERSIONS_PER_RECORD = 5
RECORDS_PER_PATIENT = 4
SIZES = [16 * 1024, 64 * 1024, 200 * 1024, 700 * 1024, 4 * 1024 * 1024]


class MemoryTags:
    """The store's tag calls, in memory: the benchmark measures the job, not S3's latency."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.writes = 0

    def get_tags(self, key: str) -> dict[str, str]:
        return dict(self.tags.get(key, {}))

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        self.writes += 1
        self.tags[key] = dict(tags)


def _insert(model, rows) -> None:
    connection = db.session.connection()
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            connection.execute(insert(model), batch)
            batch = []
    if batch:
        connection.execute(insert(model), batch)


def seed(versions: int) -> int:
    rng = random.Random(14)  # noqa: S311 - fake data, the same every run
    now = utcnow()
    tenant = Tenant(name="Bench Clinic", slug="bench", timezone="America/Chicago")
    db.session.add(tenant)
    db.session.flush()
    doctor = User(tenant_id=tenant.id, email="doctor@bench.example", full_name="Dr. Bench", role=DOCTOR)
    db.session.add(doctor)
    db.session.flush()
    records = -(-versions // VERSIONS_PER_RECORD)
    patients = -(-records // RECORDS_PER_PATIENT)
    _insert(
        Patient,
        (
            {"tenant_id": tenant.id, "mrn": f"B{n:07d}", "first_name": "Pat", "last_name": f"Bench{n}",
             "date_of_birth": date(1970, 1, 1)}
            for n in range(patients)
        ),
    )  # fmt: skip
    first_patient = db.session.scalar(select(func.min(Patient.id)).where(Patient.tenant_id == tenant.id))
    _insert(
        MedicalRecord,
        (
            {"tenant_id": tenant.id, "patient_id": first_patient + n // RECORDS_PER_PATIENT,
             "doctor_id": doctor.id, "author_id": doctor.id, "visit_at": now - timedelta(days=400),
             "chief_complaint": "Bench", "status": "draft" if n % 10 == 0 else "finalized"}
            for n in range(records)
        ),
    )  # fmt: skip
    first_record = db.session.scalar(
        select(func.min(MedicalRecord.id)).where(MedicalRecord.tenant_id == tenant.id)
    )
    _insert(
        Attachment,
        (
            {"tenant_id": tenant.id, "record_id": first_record + n // VERSIONS_PER_RECORD,
             "patient_id": first_patient + n // VERSIONS_PER_RECORD // RECORDS_PER_PATIENT,
             "filename": f"f{n}.pdf", "name_key": f"f{n}.pdf", "created_at": now, "updated_at": now}
            for n in range(versions)
        ),
    )  # fmt: skip
    first_attachment = db.session.scalar(
        select(func.min(Attachment.id)).where(Attachment.tenant_id == tenant.id)
    )
    _insert(
        AttachmentVersion,
        (
            {"tenant_id": tenant.id, "attachment_id": first_attachment + n, "number": 1,
             "storage_key": f"{tenant.id}/medical-records/2026/01/{n}/f{n}.pdf", "original_name": f"f{n}.pdf",
             "kind": "pdf", "content_type": "application/pdf", "size": (size := rng.choice(SIZES)),
             "stored_size": size, "sha256": "0" * 64, "stored_sha256": "0" * 64,
             "storage_class": "INTELLIGENT_TIERING", "scan_status": "clean", "preview_status": "none",
             "created_at": now - timedelta(days=rng.randrange(1, 400))}
            for n in range(versions)
        ),
    )  # fmt: skip
    first_version = db.session.scalar(
        select(func.min(AttachmentVersion.id)).where(AttachmentVersion.tenant_id == tenant.id)
    )
    _insert(
        FileAccess,
        (
            {"tenant_id": tenant.id, "attachment_id": first_attachment + n, "version_id": first_version + n,
             "user_id": doctor.id, "action": "view",
             "occurred_at": now - timedelta(days=rng.randrange(0, 30))}
            for n in range(0, versions, 10)
        ),
    )  # fmt: skip
    _insert(
        LegalHold,
        (
            {"tenant_id": tenant.id, "patient_id": first_patient + n, "reason": "Bench", "placed_at": now}
            for n in range(0, patients, 100)
        ),
    )  # fmt: skip
    db.session.commit()
    return tenant.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    try:
        app = bench_app(workdir)
        with app.app_context():
            migrate_fresh()
            started = time.perf_counter()
            tenant_id = seed(args.versions)
            analyze()
            print(f"seeded {args.versions:,} versions in {time.perf_counter() - started:.1f} s")
            store = app.extensions[STORAGE_EXTENSION] = MemoryTags()

            started = time.perf_counter()
            count, size = db.session.execute(
                select(func.count(), func.sum(AttachmentVersion.stored_size)).where(
                    AttachmentVersion.tenant_id == tenant_id
                )
            ).one()
            bare = time.perf_counter() - started
            db.session.commit()
            print(
                f"bare SELECT count(*), sum(stored_size): {bare * 1000:.0f} ms "
                f"({count:,} versions, {size:,} B)"
            )

            for label in ("first run (tags what may be archived)", "second run (nothing to write)"):
                store.writes = 0
                started = time.perf_counter()
                counts = retag_clinic(tenant_id)
                elapsed = time.perf_counter() - started
                print(f"storage.tags {label}: {elapsed:.2f} s, {store.writes:,} tag writes, {counts}")

            started = time.perf_counter()
            warnings = check_rules(tenant_id)
            print(f"check_rules: {(time.perf_counter() - started) * 1000:.0f} ms, {len(warnings)} warnings")
            db.session.remove()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
