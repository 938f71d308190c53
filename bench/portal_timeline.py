"""Benchmark of the patient's timeline and home page against a bare Flask + Jinja page of the same rows.

    .venv/bin/python bench/portal_timeline.py [--years 5] [--requests 30]

Seeds one clinic with one patient whose history grows a year at a time, at the volumes of a patient with a
chronic condition: 12 finalized visits a year with 2 prescriptions each, 60 lab results a year, a message
thread a week (a question and an answer), and 4 shares a year. Then it signs the patient in through the test
client and times `GET /portal/timeline` (the first page), a later page (the keyset cursor the page links to),
the timeline filtered to results, and `GET /portal` (the home page): server time with `time.perf_counter()`
and SQL statements with a `before_cursor_execute` listener. It measures after 1 year and after `--years`, so
the query counts can be read side by side: they must not grow with the history. The baseline is a bare
Flask app rendering 20 rows, preloaded as dicts, as a list.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are recreated).
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import statistics
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import Flask, render_template
from jinja2 import DictLoader
from pages import QueryCounter, analyze, bench_app, migrate_fresh, p95, sign_in, time_page

from healthcrm.accounts.models import COACH, DOCTOR, PATIENT, Tenant, User
from healthcrm.accounts.secrets import hash_password
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.portal.messages.models import CLOSED, Message, Thread
from healthcrm.records.models import FINALIZED, LabResult, MedicalRecord, Prescription
from healthcrm.sharing.models import SCOPE_ALL, ShareLink

PASSWORD = "bench-password-1"  # noqa: S105 - the throw-away bench patient
OLDER_LINK = re.compile(r'href="(/portal/timeline\?[^"]*after=[^"]+)"')
LABS = (("2345-7", "Glucose", "mg/dL", 70, 99), ("4548-4", "Hemoglobin A1c", "%", 4.0, 5.6))
BASELINE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Timeline</title></head><body><ol>
{% for row in rows %}<li><p>{{ row.kind }} <time>{{ row.at }}</time></p>
<a href="{{ row.link }}">{{ row.title }}</a></li>{% endfor %}</ol></body></html>"""


class History:
    """The bench patient, whose history grows a year at a time (the newest year ends on `self.end`)."""

    def __init__(self) -> None:
        self.tenant = Tenant(name="Bench Clinic", slug="bench", timezone="America/New_York")
        db.session.add(self.tenant)
        db.session.flush()
        tid = self.tenant.id
        self.doctor = User(tenant_id=tid, email="doctor@bench.example", full_name="Bench Doctor", role=DOCTOR)
        self.coach = User(tenant_id=tid, email="coach@bench.example", full_name="Bench Coach", role=COACH)
        db.session.add_all([self.doctor, self.coach])
        db.session.flush()
        self.patient = Patient(
            tenant_id=tid,
            mrn="B-0000001",
            first_name="Bench",
            last_name="Patient",
            date_of_birth=date(1960, 5, 1),
            sex="female",
            care_stage="active",
            assigned_coach_id=self.coach.id,
        )
        db.session.add(self.patient)
        db.session.flush()
        self.user = User(
            tenant_id=tid,
            email="patient@bench.example",
            full_name="Bench Patient",
            role=PATIENT,
            patient_id=self.patient.id,
            password_hash=hash_password(PASSWORD),
        )
        db.session.add(self.user)
        db.session.commit()
        self.end = datetime(2026, 11, 1, 14, 0)
        self.years = 0

    def add_year(self) -> None:
        """One more year of history, before what is there (the newest page stays the same size)."""
        tid, pid = self.tenant.id, self.patient.id
        year_end = self.end - timedelta(days=365 * self.years)
        for month in range(12):
            visit_at = year_end - timedelta(days=30 * month + 3)
            record = MedicalRecord(
                tenant_id=tid,
                patient_id=pid,
                doctor_id=self.doctor.id,
                author_id=self.doctor.id,
                visit_at=visit_at,
                chief_complaint="Diabetes follow-up",
                status=FINALIZED,
                finalized_at=visit_at + timedelta(hours=1),
            )
            db.session.add(record)
            db.session.flush()
            for drug in ("Metformin", "Lisinopril"):
                db.session.add(
                    Prescription(
                        tenant_id=tid,
                        record_id=record.id,
                        drug=drug,
                        dose="10 mg",
                        route="oral",
                        frequency="once daily",
                        duration="30 days",
                        refills=2,
                    )
                )
            for number in range(5):
                code, name, unit, low, high = LABS[number % 2]
                db.session.add(
                    LabResult(
                        tenant_id=tid,
                        patient_id=pid,
                        record_id=record.id,
                        code=code,
                        name=name,
                        value_numeric=(low + high) / 2 + number,
                        unit=unit,
                        ref_low=low,
                        ref_high=high,
                        observed_at=visit_at - timedelta(hours=number),
                        entered_by_id=self.doctor.id,
                    )
                )
        for week in range(52):
            asked = year_end - timedelta(days=7 * week, hours=5)
            thread = Thread(
                tenant_id=tid,
                patient_id=pid,
                subject=f"Question of week {week}",
                assignee_id=self.coach.id,
                status=CLOSED,
                created_by_id=self.user.id,
                created_at=asked,
                last_message_at=asked + timedelta(hours=2),
                last_author_id=self.coach.id,
                message_count=2,
            )
            db.session.add(thread)
            db.session.flush()
            question = Message(
                tenant_id=tid,
                thread_id=thread.id,
                author_id=self.user.id,
                from_patient=True,
                body="A question about my care.",
                created_at=asked,
            )
            answer = Message(
                tenant_id=tid,
                thread_id=thread.id,
                author_id=self.coach.id,
                from_patient=False,
                body="An answer.",
                created_at=asked + timedelta(hours=2),
            )
            db.session.add_all([question, answer])
            db.session.flush()
            thread.last_message_id = answer.id
        for quarter in range(4):
            made = year_end - timedelta(days=91 * quarter + 10)
            db.session.add(
                ShareLink(
                    tenant_id=tid,
                    patient_id=pid,
                    created_by_id=self.user.id,
                    recipient_name=f"Dr. Outside {quarter}",
                    recipient_email=f"outside{quarter}@example.org",
                    scope=SCOPE_ALL,
                    created_at=made,
                    expires_at=made + timedelta(days=14),
                )
            )
        db.session.commit()
        self.years += 1


def _later_page(client, depth: int) -> str:
    """The timeline page `depth` "older" links down, as the patient scrolling reaches it."""
    url = "/portal/timeline"
    for _ in range(depth):
        found = OLDER_LINK.search(client.get(url).get_data(as_text=True))
        if found is None:
            raise SystemExit(f"{url} links to no older page")
        url = html.unescape(found.group(1))
    return url


def _baseline_app() -> Flask:
    app = Flask("baseline")
    app.jinja_loader = DictLoader({"timeline.html": BASELINE_TEMPLATE})
    rows = [
        {
            "kind": "Visit",
            "at": datetime(2026, 11, 1) - timedelta(days=n),
            "link": f"/r/{n}",
            "title": f"Visit {n}",
        }
        for n in range(20)
    ]

    @app.get("/portal/timeline")
    def timeline():
        return render_template("timeline.html", rows=rows)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    app = bench_app(workdir)
    client = app.test_client()
    with app.app_context():
        migrate_fresh()
        history = History()
        counter = QueryCounter(db.engine)
        database = db.engine.dialect.name
        email = history.user.email
    sign_in(client, email, PASSWORD)
    base_seconds, _ = time_page(_baseline_app().test_client(), "/portal/timeline", args.requests, None)
    base_median = statistics.median(base_seconds)
    results = [("baseline (Flask + Jinja, rows in memory)", "", base_seconds, [0])]
    for years in sorted({1, args.years}):
        with app.app_context():
            while history.years < years:
                history.add_year()
            analyze()
            db.session.remove()
        for label, path in (
            ("GET /portal/timeline", "/portal/timeline"),
            ("GET /portal/timeline (4th page)", _later_page(client, 3)),
            ("GET /portal/timeline?kind=result", "/portal/timeline?kind=result"),
            ("GET /portal (home)", "/portal"),
        ):
            seconds, queries = time_page(client, path, args.requests, counter)
            results.append((label, f"{years}", seconds, queries))
    print(f"{database}: the timeline and home page of a patient with {args.years} years of history")
    print("(a year: 12 visits with 2 prescriptions each, 60 results, 52 message threads, 4 shares);")
    print(f"{args.requests} requests per page\n")
    print(f"{'page':<42} {'years':>6} {'median ms':>10} {'p95 ms':>8} {'× base':>8} {'queries':>8}")
    for label, years, seconds, queries in results:
        median = statistics.median(seconds)
        print(
            f"{label:<42} {years:>6} {median * 1000:>10.2f} {p95(seconds) * 1000:>8.2f}"
            f" {median / base_median:>8.1f} {statistics.median(queries):>8g}"
        )
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
