"""Benchmark of the records list page against a bare Flask + Jinja page showing the same rows from memory.

    .venv/bin/python bench/records_list.py [--records 100000] [--labs 1000000] [--requests 50]
    .venv/bin/python bench/records_list.py --records 20000 --labs 100000      # a quick run

Seeds one clinic (Core executemany inserts in batches, not ORM objects), signs a doctor in through the test
client, then times `GET /records` and four searches (a broad code with a status filter, one patient's MRN,
a patient name with a complaint, and a two-letter term that the trigram index cannot serve): server time with
`time.perf_counter()` around each request and SQL statements with a `before_cursor_execute` listener. The
baseline is a bare Flask app whose one Jinja template renders the same 20 rows, preloaded as dicts, in a
table. Prints the median and p95, their ratio to the baseline's median, and the queries per request.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are dropped and
recreated).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import Flask, render_template
from jinja2 import DictLoader
from pages import QueryCounter, analyze, bench_app, migrate_fresh, p95, sign_in, time_page
from sqlalchemy import insert, select
from sqlalchemy.orm import joinedload, selectinload

from healthcrm.accounts.models import DOCTOR, Tenant, User
from healthcrm.accounts.secrets import hash_password
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.records.icd10 import display_code
from healthcrm.records.models import DRAFT, FINALIZED, Diagnosis, Icd10Code, LabResult, MedicalRecord
from healthcrm.records.search import build_search_text

BATCH_ROWS = 10_000
PASSWORD = "bench-password-1"  # noqa: S105 - the throw-away bench doctor
DOCTORS = 5
RECORDS_PER_PATIENT = 20
HISTORY_DAYS = 730
# A few codes, enough for the filtered list (K70 …) to find something.
CODES = {
    "K7031": "Alcoholic cirrhosis of liver with ascites",
    "K7030": "Alcoholic cirrhosis of liver without ascites",
    "K7460": "Unspecified cirrhosis of liver",
    "K760": "Fatty (change of) liver, not elsewhere classified",
    "B182": "Chronic viral hepatitis C",
    "I10": "Essential (primary) hypertension",
    "E119": "Type 2 diabetes mellitus without complications",
    "J069": "Acute upper respiratory infection, unspecified",
}
LABS = (
    ("1975-2", "Bilirubin, total", "mg/dL", 0.1, 1.2),
    ("6301-6", "INR", "INR", 0.8, 1.1),
    ("2160-0", "Creatinine", "mg/dL", 0.6, 1.3),
    ("2951-2", "Sodium", "mmol/L", 135, 145),
    ("1751-7", "Albumin", "g/dL", 3.5, 5.0),
    ("1742-6", "ALT", "U/L", 7, 56),
    ("777-3", "Platelets", "10*3/uL", 150, 450),
)
BASELINE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Records</title></head><body>
<table>
  <thead><tr><th>Visit</th><th>Patient</th><th>Doctor</th><th>Diagnosis</th><th>Status</th><th>Files</th></tr></thead>
  <tbody>
  {% for row in rows %}
    <tr>
      <td><a href="/records/{{ row.id }}">{{ row.visit_at }}</a>
        <br><span>{{ row.chief_complaint }}</span></td>
      <td>{{ row.last_name }}, {{ row.first_name }}<br><span>{{ row.mrn }}</span></td>
      <td>{{ row.doctor }}</td>
      <td>{{ row.code }} {{ row.diagnosis }}</td>
      <td>{% if row.status == "finalized" %}Finalized{% else %}Draft{% endif %}</td>
      <td>{{ row.attachment_count }}</td>
    </tr>
  {% endfor %}
  </tbody>
</table>
</body></html>"""


def _insert(model, rows) -> None:
    """Insert dicts in executemany batches of BATCH_ROWS on the session's connection."""
    connection = db.session.connection()
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            connection.execute(insert(model), batch)
            batch = []
    if batch:
        connection.execute(insert(model), batch)


def _seed(records: int, labs: int) -> tuple[Tenant, User]:
    rng = random.Random(42)  # noqa: S311 - fake data, the same every run
    now = datetime(2026, 11, 1, 12, 0)
    _insert(
        Icd10Code,
        (
            {
                "code": code,
                "display_code": display_code(code),
                "name": name,
                "search_text": f"{code} {name}".lower(),
            }
            for code, name in CODES.items()
        ),
    )
    tenant = Tenant(name="Bench Clinic", slug="bench", timezone="America/New_York")
    db.session.add(tenant)
    db.session.flush()
    password_hash = hash_password(PASSWORD)
    doctors = [
        User(
            tenant_id=tenant.id,
            email=f"doctor{n}@bench.example",
            full_name=f"Dr. Bench {n}",
            role=DOCTOR,
            password_hash=password_hash,
        )
        for n in range(DOCTORS)
    ]
    db.session.add_all(doctors)
    db.session.flush()
    doctor_ids = [d.id for d in doctors]

    patients = max(1, records // RECORDS_PER_PATIENT)
    _insert(
        Patient,
        (
            {
                "id": n,
                "tenant_id": tenant.id,
                "mrn": f"B-{n:07d}",
                "first_name": f"First{n}",
                "last_name": f"Last{n % 997}",
                "date_of_birth": date(1940 + n % 60, 1 + n % 12, 1 + n % 28),
                "sex": "female" if n % 2 else "male",
                "care_stage": "active",
                "created_at": now,
                "updated_at": now,
            }
            for n in range(1, patients + 1)
        ),
    )
    codes = [display_code(code) for code in CODES]
    record_rows, diagnosis_rows = [], []
    for n in range(1, records + 1):
        visit_at = now - timedelta(minutes=rng.randint(0, HISTORY_DAYS * 24 * 60))
        doctor_id = rng.choice(doctor_ids)
        finalized = rng.random() < 0.9
        patient_id = 1 + n % patients
        complaint = rng.choice(("Follow-up", "Abdominal swelling", "Fatigue", "Check-up"))
        chosen = rng.sample(codes, k=rng.choice((1, 1, 2)))
        record_rows.append(
            {
                "id": n,
                "tenant_id": tenant.id,
                "patient_id": patient_id,
                "doctor_id": doctor_id,
                "author_id": doctor_id,
                "visit_at": visit_at,
                "chief_complaint": complaint,
                "treatment_plan": "Continue current plan.",
                "notes": "Stable.",
                "bp_systolic": rng.randint(105, 160),
                "bp_diastolic": rng.randint(60, 95),
                "pulse": rng.randint(55, 100),
                "on_dialysis": False,
                "follow_up_required": False,
                "status": FINALIZED if finalized else DRAFT,
                "finalized_at": visit_at + timedelta(hours=2) if finalized else None,
                "finalized_by_id": doctor_id if finalized else None,
                "attachment_count": 0,
                # What the session hook would store (Core inserts bypass it).
                "search_text": build_search_text(
                    complaint,
                    "Stable.",
                    f"First{patient_id}",
                    f"Last{patient_id % 997}",
                    f"B-{patient_id:07d}",
                    [(code, CODES[code.replace(".", "")]) for code in chosen],
                ),
                "created_at": visit_at,
                "updated_at": visit_at,
            }
        )
        for position, code in enumerate(chosen):
            diagnosis_rows.append(
                {
                    "tenant_id": tenant.id,
                    "record_id": n,
                    "code": code,
                    "name": CODES[code.replace(".", "")],
                    "is_primary": position == 0,
                }
            )
    _insert(MedicalRecord, record_rows)
    _insert(Diagnosis, diagnosis_rows)
    del record_rows, diagnosis_rows

    def lab_rows():
        for n in range(labs):
            code, name, unit, low, high = LABS[n % len(LABS)]
            value = round(rng.uniform(low * 0.7, high * 1.4), 2)
            observed_at = now - timedelta(minutes=rng.randint(0, HISTORY_DAYS * 24 * 60))
            yield {
                "tenant_id": tenant.id,
                "patient_id": 1 + (n // len(LABS)) % patients,
                "record_id": 1 + n % records if records else None,
                "code": code,
                "name": name,
                "value_numeric": value,
                "unit": unit,
                "ref_low": low,
                "ref_high": high,
                "flag": "L" if value < low else "H" if value > high else "N",
                "observed_at": observed_at,
                "entered_by_id": doctor_ids[0],
                "created_at": observed_at,
            }

    _insert(LabResult, lab_rows())
    db.session.commit()
    return tenant, doctors[0]


def _baseline_app(rows: list[dict]) -> Flask:
    app = Flask("baseline")
    app.jinja_loader = DictLoader({"records.html": BASELINE_TEMPLATE})

    @app.get("/records")
    def records():
        return render_template("records.html", rows=rows)

    return app


def _first_page_rows() -> list[dict]:
    """The 20 newest records as plain dicts, what the list page shows."""
    found = db.session.scalars(
        select(MedicalRecord)
        .options(
            joinedload(MedicalRecord.patient),
            joinedload(MedicalRecord.doctor),
            selectinload(MedicalRecord.diagnoses),
        )
        .order_by(MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
        .limit(20)
    ).all()
    return [
        {
            "id": r.id,
            "visit_at": r.visit_at.strftime("%Y-%m-%d %H:%M"),
            "chief_complaint": r.chief_complaint,
            "last_name": r.patient.last_name,
            "first_name": r.patient.first_name,
            "mrn": r.patient.mrn,
            "doctor": r.doctor.full_name,
            "code": r.primary_diagnosis.code if r.primary_diagnosis else "",
            "diagnosis": r.primary_diagnosis.name if r.primary_diagnosis else "",
            "status": r.status,
            "attachment_count": r.attachment_count,
        }
        for r in found
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--labs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    app = bench_app(workdir)
    with app.app_context():
        # The schema as production has it: the migrations, which add PostgreSQL's trigram search indexes.
        migrate_fresh()
        started = time.perf_counter()
        _, doctor = _seed(args.records, args.labs)
        seeded = time.perf_counter() - started
        analyze()
        email = doctor.email
        rows = _first_page_rows()
        counter = QueryCounter(db.engine)
        database = db.engine.dialect.name
        db.session.remove()
    print(f"{database}: {args.records:,} records, {args.labs:,} labs")
    print(f"seeded in {seeded:.1f} s; {args.requests} requests per page\n")

    baseline = _baseline_app(rows).test_client()
    base_seconds, _ = time_page(baseline, "/records", args.requests, None, must_show="/records/")
    base_median = statistics.median(base_seconds)

    client = app.test_client()
    with app.app_context():
        sign_in(client, email, PASSWORD)
    results = [("baseline (Flask + Jinja, rows in memory)", base_seconds, [0])]
    for label, path in (
        ("GET /records", "/records"),
        ("GET /records?q=K70&status=finalized", "/records?q=K70&status=finalized"),
        # One patient's MRN: few matches, so without an index the search reads every record.
        ("GET /records?q=B-0001234", "/records?q=B-0001234"),
        ("GET /records?q=last123+fatigue", "/records?q=last123+fatigue"),
        ("GET /records?q=k7 (two letters)", "/records?q=k7"),
    ):
        with app.app_context():
            seconds, queries = time_page(client, path, args.requests, counter, must_show="/records/")
        results.append((label, seconds, queries))

    print(f"{'page':<42} {'median ms':>10} {'p95 ms':>8} {'× base':>8} {'queries':>8}")
    for label, seconds, queries in results:
        median = statistics.median(seconds)
        print(
            f"{label:<42} {median * 1000:>10.2f} {p95(seconds) * 1000:>8.2f} {median / base_median:>8.1f}"
            f" {statistics.median(queries):>8g}"
        )
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)  # the full-size SQLite file is a few hundred MB


if __name__ == "__main__":
    main()
