"""The daily storage metrics job for a clinic with 1,000,000 file versions, against a bare aggregate.

    .venv/bin/python bench/storage_metrics.py [--versions 1000000] [--accesses 200000] [--runs 5]

Seeds one clinic with `--versions` attachment versions (bulk INSERTs: 10 versions per attachment, sizes
from a few KB to hundreds of MB, five storage classes, three years of upload times, some today), `--accesses`
views and downloads and 1,000 restore events, plus a second clinic with a tenth as many versions (the
job must not read them). Then times, in the same run, median of `--runs` after one warm-up:

1. the bare `SELECT count(*), sum(size) FROM attachment_versions WHERE tenant_id = ?` (baseline);
2. the job's work for the clinic (`metrics.record_clinic`: the grouped scan by class and size bucket with
   the day's PUTs, the day's views and downloads, the restores, the upsert and the threshold check);

and prints both and their ratio. Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL
(its tables are recreated).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from healthcrm import create_app
from healthcrm.accounts.models import Tenant
from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.files.models import Attachment, AttachmentVersion, FileAccess
from healthcrm.patients.models import Patient
from healthcrm.storage_cost import metrics
from healthcrm.tenant_scope import all_tenants

CHUNK = 20_000
VERSIONS_PER_FILE = 10
CLASSES = ["STANDARD", "INTELLIGENT_TIERING", "INTELLIGENT_TIERING", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"]


def _size(rng: random.Random) -> int:
    # Mostly small documents and photos, some scans, a few large imaging studies.
    return int(min(rng.lognormvariate(12.5, 2.0), 2 * 1024**3)) + 200


def _seed_clinic(name: str, versions: int, accesses: int, restores: int, rng: random.Random) -> int:
    now = datetime.now(UTC).replace(tzinfo=None)
    tenant = Tenant(name=name, slug=name.lower().replace(" ", "-"), timezone="America/Chicago")
    db.session.add(tenant)
    db.session.flush()
    patient = Patient(tenant_id=tenant.id, mrn="B-1", first_name="Bench", last_name="Patient",
                      date_of_birth=datetime(1970, 1, 1).date(), care_stage="active")  # fmt: skip
    db.session.add(patient)
    db.session.commit()
    files = versions // VERSIONS_PER_FILE
    first_attachment = (db.session.scalar(select(func.max(Attachment.id))) or 0) + 1
    first_version = (db.session.scalar(select(func.max(AttachmentVersion.id))) or 0) + 1
    for start in range(0, files, CHUNK):
        db.session.execute(
            insert(Attachment),
            [{"id": first_attachment + n, "tenant_id": tenant.id, "patient_id": patient.id,
              "filename": f"file-{n}.pdf", "name_key": f"file-{n}.pdf", "created_at": now, "updated_at": now}
             for n in range(start, min(files, start + CHUNK))],
        )  # fmt: skip
        db.session.commit()
    for start in range(0, versions, CHUNK):
        rows = []
        for n in range(start, min(versions, start + CHUNK)):
            size = _size(rng)
            compressed = rng.random() < 0.3
            created = now - timedelta(days=rng.random() * 1100) if rng.random() > 0.001 else now
            rows.append({
                "id": first_version + n, "tenant_id": tenant.id,
                "attachment_id": first_attachment + n // VERSIONS_PER_FILE,
                "number": n % VERSIONS_PER_FILE + 1,
                "storage_key": f"t/{tenant.id}/{n}", "original_name": "f.pdf", "kind": "pdf",
                "content_type": "application/pdf", "size": size,
                "stored_size": size // 3 if compressed else size,
                "compression": "gzip" if compressed else None,
                "sha256": "0" * 64, "stored_sha256": "0" * 64, "storage_class": rng.choice(CLASSES),
                "scan_status": "not_scanned", "preview_status": "ready", "preview_key": f"p/{n}",
                "created_at": created,
            })  # fmt: skip
        db.session.execute(insert(AttachmentVersion), rows)
        db.session.commit()
    for start in range(0, accesses, CHUNK):
        db.session.execute(
            insert(FileAccess),
            [{"tenant_id": tenant.id, "attachment_id": first_attachment + (n * 7919) % files,
              "version_id": first_version + ((n * 7919) % files) * VERSIONS_PER_FILE,
              "action": "view" if n % 3 else "download",
              "occurred_at": now - timedelta(days=rng.random() * 365)}
             for n in range(start, min(accesses, start + CHUNK))],
        )  # fmt: skip
        db.session.commit()
    db.session.execute(
        insert(AuditEvent),
        [{"tenant_id": tenant.id, "action": metrics.RESTORE_REQUESTED, "resource_type": "attachment_version",
          "resource_id": str(first_version + n * 97), "occurred_at": now - timedelta(hours=rng.random() * 48),
          "outcome": "success", "prev_hash": "0" * 64, "hash": "0" * 64}
         for n in range(restores)],
    )  # fmt: skip
    db.session.commit()
    return tenant.id


def _median(fn, runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--accesses", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    overrides = {"APP_ENV": "testing", "INSTANCE_PATH": str(workdir), "SECRET_KEY": "bench"}
    if not os.environ.get("DATABASE_URL"):
        overrides["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{workdir / 'bench.db'}"
    app = create_app(overrides)
    with app.app_context(), all_tenants("the benchmark seeds and reads its own clinics"):
        db.drop_all()
        db.create_all()
        rng = random.Random(14)  # noqa: S311 - sizes for a benchmark, not secrets
        started = time.perf_counter()
        tenant_id = _seed_clinic("Bench Clinic", args.versions, args.accesses, 1000, rng)
        _seed_clinic("Other Clinic", args.versions // 10, args.accesses // 10, 100, rng)
        if db.engine.dialect.name == "postgresql":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
        seeded = time.perf_counter() - started

        def bare() -> None:
            db.session.execute(
                select(func.count(), func.sum(AttachmentVersion.size)).where(
                    AttachmentVersion.tenant_id == tenant_id
                )
            ).one()
            db.session.rollback()

        def job() -> None:
            metrics.record_clinic(tenant_id)

        baseline = _median(bare, args.runs)
        recorded = _median(job, args.runs)
        row = metrics.latest(tenant_id)
        dialect = db.engine.dialect.name
        db.session.remove()
        db.drop_all()

    others = args.versions // 10
    print(f"database: {dialect}; {args.versions:,} versions in the clinic (+{others:,} in another), "
          f"{args.accesses:,} accesses, seeded in {seeded:.0f} s")  # fmt: skip
    print(f"recorded: {row.objects:,} objects, {row.bytes_stored / 1024**4:.2f} TiB stored, "
          f"{row.puts} PUTs, {row.views + row.downloads} GETs, {row.restores} restores today")  # fmt: skip
    print(f"bare SELECT count(*), sum(size) (baseline): {baseline * 1000:9.1f} ms")
    print(
        f"storage metrics job for the clinic:         {recorded * 1000:9.1f} ms   "
        f"ratio {recorded / baseline:5.2f}x"
    )


if __name__ == "__main__":
    main()
