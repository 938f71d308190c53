"""Benchmarks for the foundation's hot paths, as ratios against a baseline measured in the same run.

    .venv/bin/python bench/audit_and_search.py [--patients 5000] [--changes 500]

1. Audit overhead: changing a patient with its hash-chained audit event in the same transaction
   (`record_event`, which reads the chain head and hashes) against the same change without an event.
2. Patient search: one page of `search_patients` (count + page + audit event) against the bare page
   query it wraps.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are recreated).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import select

from healthcrm import create_app
from healthcrm.accounts.models import Tenant
from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.patients.services import search_patients
from healthcrm.tenancy import scoped


def _seed(patients: int) -> Tenant:
    tenant = Tenant(name="Bench Clinic", slug="bench")
    db.session.add(tenant)
    db.session.flush()
    db.session.add_all(
        Patient(
            tenant_id=tenant.id,
            mrn=f"B-{n:06d}",
            first_name=f"First{n}",
            last_name=f"Last{n % 997}",
            date_of_birth=date(1950 + n % 50, 1 + n % 12, 1 + n % 28),
            phone=f"555-{n:04d}",
            care_stage="active",
        )
        for n in range(patients)
    )
    db.session.commit()
    return tenant


def _per_call(fn, repeat: int) -> float:
    """Median seconds per call over `repeat` calls, after one warm-up."""
    fn(0)
    samples = []
    for i in range(1, repeat + 1):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    overrides = {"APP_ENV": "testing", "INSTANCE_PATH": str(workdir), "SECRET_KEY": "bench"}
    if not os.environ.get("DATABASE_URL"):
        overrides["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{workdir / 'bench.db'}"
    app = create_app(overrides)
    with app.app_context():
        db.drop_all()
        db.create_all()
        tenant = _seed(args.patients)
        actor = Actor(tenant_id=tenant.id, user_id=None, role="doctor", ip="127.0.0.1")
        ids = list(db.session.scalars(select(Patient.id).limit(args.changes + 1)))

        def change_only(i: int) -> None:
            patient = db.session.get(Patient, ids[i % len(ids)])
            patient.phone = f"555-9{i:03d}"
            db.session.commit()

        def change_with_audit(i: int) -> None:
            patient = db.session.get(Patient, ids[i % len(ids)])
            patient.phone = f"555-8{i:03d}"
            record_event(
                actor,
                "patient.update",
                resource_type="patient",
                resource_id=patient.id,
                patient_id=patient.id,
                changed_fields=["phone"],
            )
            db.session.commit()

        baseline = _per_call(change_only, args.changes)
        audited = _per_call(change_with_audit, args.changes)

        def page_only(i: int) -> None:
            query = scoped(Patient, tenant.id).where(Patient.last_name.like(f"%Last{i % 97}%"))
            db.session.scalars(query.order_by(Patient.last_name, Patient.first_name).limit(20)).all()

        def search(i: int) -> None:
            search_patients(actor, f"Last{i % 97}")

        page = _per_call(page_only, 100)
        full = _per_call(search, 100)
        dialect = db.engine.dialect.name
        db.session.remove()
        db.drop_all()

    print(f"database: {dialect}, {args.patients} patients")
    print(f"patient change, no audit (baseline):  {baseline * 1000:7.2f} ms")
    print(
        f"patient change + audit event:         {audited * 1000:7.2f} ms   ratio {audited / baseline:5.2f}x"
    )
    print(f"page query only (baseline):           {page * 1000:7.2f} ms")
    print(f"search_patients (count+page+audit):   {full * 1000:7.2f} ms   ratio {full / page:5.2f}x")


if __name__ == "__main__":
    main()
