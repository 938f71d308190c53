"""Benchmark of the patient's free-slots page ("any provider", 8 weeks) against a bare Flask + Jinja page
showing the same times from memory.

    .venv/bin/python bench/free_slots.py [--appointments 20000] [--providers 10] [--requests 20]

Seeds one clinic (America/New_York) with `--providers` providers working Monday–Friday 08:00–12:00 and
13:00–17:00, a 30-minute video follow-up with 5-minute buffers, and `--appointments` 20-minute appointments
(Core executemany inserts, checked by the database's no-overlap rule) on a 20-minute grid of the providers'
hours from four months back to three months ahead: the past ones completed, the coming ones booked (about
half the grid is taken). Then it times, with `perf_counter()` and SQL statements counted by a
`before_cursor_execute` listener:

1. the service: `slots.free_slots(...)` for all providers over 56 days (what the page calls);
2. the page, signed in as a portal patient through the test client:
   `GET /portal/appointments/book?type_id=<id>&provider_id=&weeks=8`; skipped with a message while the
   endpoint answers 404 (the page is built on another branch).

The baseline is a bare Flask app rendering the same free times (one per start time, grouped by day),
preloaded as dicts, as a list: the ratio is what the app, its queries and the slot arithmetic cost on top.
Medians and p95 of `--requests` runs each, after one warm-up.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are recreated).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
from datetime import date, datetime, time, timedelta
from itertools import groupby
from pathlib import Path
from time import perf_counter

from flask import Flask, render_template
from jinja2 import DictLoader
from pages import QueryCounter, analyze, bench_app, migrate_fresh, p95, sign_in, time_page
from sqlalchemy import insert, update

from healthcrm.accounts.models import DOCTOR, PATIENT, Tenant, User
from healthcrm.accounts.secrets import hash_password
from healthcrm.clock import clinic_today, format_clinic_time, local_to_utc, utcnow
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.scheduling.models import (
    BOOKED,
    COMPLETED,
    IN_PERSON,
    VIDEO,
    Appointment,
    AppointmentType,
    WeeklyHours,
)
from healthcrm.scheduling.slots import bookable_providers, free_slots

ZONE = "America/New_York"
PASSWORD = "bench-password-1"  # noqa: S105 - the throw-away bench patient
BATCH_ROWS = 5_000
DAYS_BACK = 120
DAYS_AHEAD = 90
WEEKS = 8
HOURS = (((8, 0), (12, 0)), ((13, 0), (17, 0)))
GRID_MINUTES = 20  # the existing appointments: 20-minute check-ups, back to back where they fall
PATIENTS = 500
SEED = 12
BASELINE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Book</title></head><body>
<p>Times in America/New_York</p>
{% for day in days %}<section><h2>{{ day.label }}</h2><ul>
{% for slot in day.slots %}<li><button name="starts_at" value="{{ slot.value }}">{{ slot.label }}</button>
</li>{% endfor %}</ul></section>{% endfor %}</body></html>"""


def _insert(model, rows: list[dict]) -> None:
    connection = db.session.connection()
    for start in range(0, len(rows), BATCH_ROWS):
        connection.execute(insert(model), rows[start : start + BATCH_ROWS])


class Clinic:
    """The bench clinic: providers with weekly hours, a video type, patients and their appointments."""

    def __init__(self, providers: int) -> None:
        self.tenant = Tenant(name="Bench Clinic", slug="bench", timezone=ZONE, phone="+1 (555) 010-0000")
        db.session.add(self.tenant)
        db.session.flush()
        tid = self.tenant.id
        self.providers = [
            User(tenant_id=tid, email=f"doctor{n}@bench.example", full_name=f"Dr. Bench {n:02d}", role=DOCTOR)
            for n in range(providers)
        ]
        db.session.add_all(self.providers)
        self.video = AppointmentType(
            tenant_id=tid,
            name="Video follow-up",
            duration_minutes=30,
            mode=VIDEO,
            video_link="https://video.example.org/bench",
            buffer_before_minutes=5,
            buffer_after_minutes=5,
            patient_bookable=True,
            min_notice_minutes=120,
            horizon_days=WEEKS * 7,
        )
        self.checkup = AppointmentType(
            tenant_id=tid,
            name="Check-up",
            duration_minutes=GRID_MINUTES,
            mode=IN_PERSON,
            horizon_days=WEEKS * 7,
        )
        db.session.add_all([self.video, self.checkup])
        db.session.flush()
        for provider in self.providers:
            for weekday in range(5):
                for (h1, m1), (h2, m2) in HOURS:
                    db.session.add(
                        WeeklyHours(
                            tenant_id=tid,
                            provider_id=provider.id,
                            weekday=weekday,
                            starts=time(h1, m1),
                            ends=time(h2, m2),
                        )
                    )
        patients = [
            Patient(
                tenant_id=tid,
                mrn=f"B-{n:07d}",
                first_name="Bench",
                last_name=f"Patient {n}",
                date_of_birth=date(1960, 1, 1) + timedelta(days=n),
                sex="female",
                care_stage="active",
            )
            for n in range(PATIENTS)
        ]
        db.session.add_all(patients)
        db.session.flush()
        self.patient_ids = [p.id for p in patients]
        self.user = User(
            tenant_id=tid,
            email="patient@bench.example",
            full_name="Bench Patient 0",
            role=PATIENT,
            patient_id=patients[0].id,
            password_hash=hash_password(PASSWORD),
        )
        db.session.add(self.user)
        db.session.commit()

    def add_appointments(self, count: int) -> None:
        """`count` check-ups on random free cells of the providers' 20-minute grid, around today."""
        rng = random.Random(SEED)  # noqa: S311 - a reproducible spread, not a secret
        today = clinic_today(ZONE)
        cells = []
        for offset in range(-DAYS_BACK, DAYS_AHEAD + 1):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for (h1, m1), (h2, m2) in HOURS:
                moment = datetime(day.year, day.month, day.day, h1, m1)  # a local wall-clock time
                end = datetime(day.year, day.month, day.day, h2, m2)
                while moment + timedelta(minutes=GRID_MINUTES) <= end:
                    cells.extend((provider.id, moment) for provider in self.providers)
                    moment += timedelta(minutes=GRID_MINUTES)
        if count > len(cells):
            raise SystemExit(f"{count} appointments do not fit in {len(cells)} cells")
        now = utcnow()
        rows = []
        for provider_id, local in rng.sample(cells, count):
            starts = local_to_utc(local, ZONE)
            ends = starts + timedelta(minutes=GRID_MINUTES)
            rows.append(
                {
                    "tenant_id": self.tenant.id,
                    "patient_id": rng.choice(self.patient_ids),
                    "provider_id": provider_id,
                    "type_id": self.checkup.id,
                    "starts_at": starts,
                    "ends_at": ends,
                    "blocked_from": starts,
                    "blocked_until": ends,
                    "status": BOOKED,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        _insert(Appointment, rows)
        db.session.execute(
            update(Appointment)
            .where(Appointment.tenant_id == self.tenant.id, Appointment.ends_at <= now)
            .values(status=COMPLETED)
        )
        db.session.commit()


def _days(slots, zone: str) -> list[dict]:
    """The free times as the page would show them for "any provider": one per start time, by day."""
    times = sorted({slot.starts_at for slot in slots})
    return [
        {
            "label": format_clinic_time(group[0], zone, "%A %d %B"),
            "slots": [{"value": t.isoformat(), "label": format_clinic_time(t, zone, "%H:%M")} for t in group],
        }
        for _day, grouped in groupby(times, key=lambda t: format_clinic_time(t, zone, "%Y-%m-%d"))
        for group in [list(grouped)]
    ]


def _baseline_app(days: list[dict]) -> Flask:
    app = Flask("baseline")
    app.jinja_loader = DictLoader({"book.html": BASELINE_TEMPLATE})

    @app.get("/portal/appointments/book")
    def book():
        return render_template("book.html", days=days)

    return app


def _time_service(
    clinic: Clinic, requests: int, counter: QueryCounter
) -> tuple[list[float], list[int], list]:
    """Seconds and statements per `free_slots` call for every provider over the page's 8 weeks."""
    seconds, queries, slots = [], [], []
    for run in range(requests + 1):  # the first is the warm-up
        before = counter.count
        start = perf_counter()
        provider_ids = [p.id for p in bookable_providers(clinic.tenant.id)]
        today = clinic_today(ZONE)
        slots = free_slots(
            clinic.tenant.id, ZONE, clinic.video, provider_ids, today, today + timedelta(days=WEEKS * 7 - 1)
        )
        if run:
            seconds.append(perf_counter() - start)
            queries.append(counter.count - before)
    return seconds, queries, slots


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appointments", type=int, default=20_000)
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    app = bench_app(workdir)
    client = app.test_client()
    with app.app_context():
        migrate_fresh()
        started = perf_counter()
        clinic = Clinic(args.providers)
        clinic.add_appointments(args.appointments)
        seeded = perf_counter() - started
        analyze()
        counter = QueryCounter(db.engine)
        database = db.engine.dialect.name
        service_seconds, service_queries, slots = _time_service(clinic, args.requests, counter)
        days = _days(slots, ZONE)
        type_id, email = clinic.video.id, clinic.user.email
        db.session.remove()
    shown = sum(len(day["slots"]) for day in days)
    base_seconds, _ = time_page(
        _baseline_app(days).test_client(), "/portal/appointments/book", args.requests, None
    )
    base_median = statistics.median(base_seconds)
    results = [
        ("baseline (Flask + Jinja, times in memory)", base_seconds, [0]),
        (f"free_slots(): {args.providers} providers, 56 days", service_seconds, service_queries),
    ]
    url = f"/portal/appointments/book?type_id={type_id}&provider_id=&weeks={WEEKS}"
    sign_in(client, email, PASSWORD)
    skipped = None
    probe = client.get(url)
    if probe.status_code == 404:
        skipped = f"GET {url} answers 404: the free-slots page is not on this branch yet; page not timed."
    else:
        seconds, queries = time_page(client, url, args.requests, counter)
        results.append(("GET /portal/appointments/book (any, 8 weeks)", seconds, queries))

    print(f"{database}: free slots of a video follow-up for {args.providers} providers over {WEEKS} weeks,")
    print(
        f"{args.appointments:,} existing appointments from {DAYS_BACK} days back to {DAYS_AHEAD} ahead "
        f"(seeded in {seeded:.1f} s);"
    )
    print(
        f"{len(slots):,} free slots, {shown:,} distinct times on {len(days)} days shown; "
        f"{args.requests} requests each\n"
    )
    print(f"{'what':<46} {'median ms':>10} {'p95 ms':>8} {'× base':>8} {'queries':>8}")
    for label, seconds, queries in results:
        median = statistics.median(seconds)
        print(
            f"{label:<46} {median * 1000:>10.2f} {p95(seconds) * 1000:>8.2f}"
            f" {median / base_median:>8.1f} {statistics.median(queries):>8g}"
        )
    if skipped:
        print(f"\n{skipped}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
