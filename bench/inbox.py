"""Benchmark of the staff message inbox against a bare Flask + Jinja page showing the same rows from memory.

    .venv/bin/python bench/inbox.py [--threads 10000] [--requests 30]

Seeds one clinic (Core executemany inserts) with `--threads` open threads of 2 messages each, a coach and a
nurse with read marks on a third of them, then signs the coach in through the test client and times
`GET /care/inbox` (the first page of new threads, all scopes), the "mine" scope, and the second page (a
keyset cursor): server time with `time.perf_counter()` and SQL statements with a `before_cursor_execute`
listener. It measures at 1,000 threads first and then at the full count, so the query counts can be read
side by side: they must not grow with the data. The baseline is a bare Flask app rendering the same 20 rows,
preloaded as dicts, in a table.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are recreated).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import Flask, render_template
from jinja2 import DictLoader
from pages import QueryCounter, analyze, bench_app, migrate_fresh, p95, sign_in, time_page
from sqlalchemy import insert

from healthcrm.accounts.models import COACH, NURSE, PATIENT, Tenant, User
from healthcrm.accounts.secrets import hash_password
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.portal.messages import services
from healthcrm.portal.messages.models import NEW, Message, Thread, ThreadRead

BATCH_ROWS = 10_000
PASSWORD = "bench-password-1"  # noqa: S105 - the throw-away bench coach
SMALL = 1_000
BASELINE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inbox</title></head><body>
<table><thead><tr><th>Subject</th><th>Patient</th><th>Assigned to</th><th>Last message</th></tr></thead>
<tbody>{% for row in rows %}<tr><td><a href="/care/inbox/{{ row.id }}">{{ row.subject }}</a></td>
<td>{{ row.patient }} {{ row.mrn }}</td><td>{{ row.assignee }}</td><td>{{ row.at }}</td></tr>{% endfor %}
</tbody></table></body></html>"""


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


class Clinic:
    """The bench clinic, grown in steps (1,000 threads, then the rest)."""

    def __init__(self) -> None:
        self.tenant = Tenant(name="Bench Clinic", slug="bench", timezone="America/New_York")
        db.session.add(self.tenant)
        db.session.flush()
        password_hash = hash_password(PASSWORD)
        self.coach = User(
            tenant_id=self.tenant.id,
            email="coach@bench.example",
            full_name="Bench Coach",
            role=COACH,
            password_hash=password_hash,
        )
        self.nurse = User(
            tenant_id=self.tenant.id, email="nurse@bench.example", full_name="Bench Nurse", role=NURSE
        )
        db.session.add_all([self.coach, self.nurse])
        db.session.flush()
        self.threads = 0
        self.start = datetime(2026, 11, 1, 12, 0)

    def grow_to(self, total: int) -> None:
        first, tid = self.threads + 1, self.tenant.id
        numbers = range(first, total + 1)
        # One patient (with a portal account) per 5 threads.
        new_patients = range((first - 1) // 5 + 1 if first > 1 else 1, (total - 1) // 5 + 2)
        existing = (first - 2) // 5 + 1 if first > 1 else 0
        patient_numbers = [n for n in new_patients if n > existing]
        _insert(
            Patient,
            (
                {
                    "id": n,
                    "tenant_id": tid,
                    "mrn": f"B-{n:07d}",
                    "first_name": f"First{n}",
                    "last_name": f"Last{n % 997}",
                    "date_of_birth": date(1950 + n % 50, 1, 1),
                    "sex": "female",
                    "care_stage": "active",
                    "assigned_coach_id": self.coach.id,
                    "messaging_enabled": True,
                    "created_at": self.start,
                    "updated_at": self.start,
                }
                for n in patient_numbers
            ),
        )
        _insert(
            User,
            (
                {
                    "id": 1000 + n,
                    "tenant_id": tid,
                    "email": f"p{n}@bench.example",
                    "full_name": f"First{n}",
                    "role": PATIENT,
                    "patient_id": n,
                    "active": True,
                    "created_at": self.start,
                }
                for n in patient_numbers
            ),
        )

        def at(n: int) -> datetime:
            return self.start + timedelta(minutes=n)

        _insert(
            Thread,
            (
                {
                    "id": n,
                    "tenant_id": tid,
                    "patient_id": (n - 1) // 5 + 1,
                    "subject": f"Question {n}",
                    "assignee_id": self.coach.id if n % 3 else None,
                    "pool_roles": None if n % 3 else [NURSE, "doctor"],
                    "pool_name": None if n % 3 else "Medication question",
                    "status": NEW,
                    "created_by_id": 1000 + (n - 1) // 5 + 1,
                    "created_at": at(n),
                    "last_message_at": at(n) + timedelta(seconds=30),
                    "last_message_id": 2 * n,
                    "last_author_id": 1000 + (n - 1) // 5 + 1,
                    "message_count": 2,
                }
                for n in numbers
            ),
        )
        _insert(
            Message,
            (
                {
                    "id": 2 * n - 1 + step,
                    "tenant_id": tid,
                    "thread_id": n,
                    "author_id": 1000 + (n - 1) // 5 + 1,
                    "from_patient": True,
                    "body": "A question about my care.",
                    "created_at": at(n) + timedelta(seconds=30 * step),
                }
                for n in numbers
                for step in (0, 1)
            ),
        )
        _insert(
            ThreadRead,
            (
                {
                    "tenant_id": tid,
                    "thread_id": n,
                    "user_id": self.coach.id,
                    "last_read_message_id": 2 * n,
                    "read_at": at(n),
                }
                for n in numbers
                if n % 3 == 0
            ),
        )
        db.session.commit()
        self.threads = total


def _baseline_app(rows: list[dict]) -> Flask:
    app = Flask("baseline")
    app.jinja_loader = DictLoader({"inbox.html": BASELINE_TEMPLATE})

    @app.get("/care/inbox")
    def inbox():
        return render_template("inbox.html", rows=rows)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    app = bench_app(workdir)
    client = app.test_client()
    results = []
    with app.app_context():
        migrate_fresh()
        clinic = Clinic()
        counter = QueryCounter(db.engine)
        database = db.engine.dialect.name
        coach = Actor(tenant_id=clinic.tenant.id, user_id=clinic.coach.id, role=COACH)
        email = clinic.coach.email
        db.session.commit()
    # Requests run outside the bench's app context: each has its own, as in production.
    sign_in(client, email, PASSWORD)
    base_median = None
    for size in sorted({min(SMALL, args.threads), args.threads}):
        with app.app_context():
            clinic.grow_to(size)
            analyze()
            page = services.inbox(coach)
            rows = [
                {
                    "id": r.thread.id,
                    "subject": r.thread.subject,
                    "patient": r.patient_name,
                    "mrn": r.patient_mrn,
                    "assignee": r.assignee_name or r.thread.pool_name,
                    "at": r.thread.last_message_at,
                }
                for r in page.rows
            ]
            next_cursor = page.next_cursor
            db.session.remove()
        if base_median is None:
            base_seconds, _ = time_page(
                _baseline_app(rows).test_client(), "/care/inbox", args.requests, None, must_show="Question"
            )
            base_median = statistics.median(base_seconds)
            results.append(("baseline (Flask + Jinja, rows in memory)", "", base_seconds, [0]))
        for label, path in (
            ("GET /care/inbox", "/care/inbox"),
            ("GET /care/inbox?scope=mine", "/care/inbox?scope=mine"),
            ("GET /care/inbox (second page)", f"/care/inbox?before={next_cursor}"),
        ):
            seconds, queries = time_page(client, path, args.requests, counter, must_show="Question")
            results.append((label, f"{size:,}", seconds, queries))
    print(
        f"{database}: the inbox of a clinic with {args.threads:,} open threads; "
        f"{args.requests} requests per page\n"
    )
    print(f"{'page':<42} {'threads':>8} {'median ms':>10} {'p95 ms':>8} {'× base':>8} {'queries':>8}")
    for label, size, seconds, queries in results:
        median = statistics.median(seconds)
        print(
            f"{label:<42} {size:>8} {median * 1000:>10.2f} {p95(seconds) * 1000:>8.2f}"
            f" {median / base_median:>8.1f} {statistics.median(queries):>8g}"
        )
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
