"""The audit viewer and CSV export on a big log, as ratios against a small clinic measured in the same run.

    .venv/bin/python bench/audit_log.py [--events 1000000] [--small 10000] [--repeat 50]

One clinic with `--events` events over two years (30 users, 3,000 patients), one with `--small`: the
viewer's queries (first page, a patient, a user, a month, the 20th page by keyset) must not grow with the
log, so each prints its p95 on the big clinic and the ratio to the small one. Then the CSV export job on a
patient filter and on a month: seconds and peak Python memory (tracemalloc), and the ratio of its time to a
bare dump of the same rows (a cursor straight into csv.writer, the floor any export can reach; on
PostgreSQL, COPY … TO STDOUT). Memory must stay flat: compare the peaks of the two sizes.

Uses a throw-away SQLite file, or the PostgreSQL database in DATABASE_URL (its tables are recreated).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from healthcrm import create_app
from healthcrm.accounts.models import Tenant
from healthcrm.audit.csv_export import export_csv
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.search import AuditFilter
from healthcrm.audit.views import _page_of
from healthcrm.extensions import db

START = datetime(2024, 1, 1)
ACTIONS = ["record.view", "patient.view", "attachment.download", "auth.login", "record.update"]


def _seed(tenant_id: int, count: int) -> None:
    step = timedelta(days=730) / count
    batch = []
    for n in range(count):
        batch.append(
            {
                "tenant_id": tenant_id,
                "occurred_at": START + step * n,
                "request_id": f"r{n // 3}",
                "actor_user_id": 1 + n % 30,
                "actor_role": "doctor",
                "patient_id": 1 + n % 3000,
                "action": ACTIONS[n % len(ACTIONS)],
                "resource_type": "record",
                "resource_id": str(n % 9000),
                "outcome": "success",
                "ip": "10.0.0.1",
                "user_agent": "bench",
                "prev_hash": "0" * 64,
                "hash": f"{n:064x}",
            }
        )
        if len(batch) == 10_000:
            db.session.execute(insert(AuditEvent), batch)
            batch = []
    if batch:
        db.session.execute(insert(AuditEvent), batch)
    db.session.commit()


def _p95(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.quantiles(samples, n=20)[-1]


class _Progress:
    def __init__(self, tenant_id: int):
        self.tenant_id = tenant_id

    def __call__(self, percent: int) -> None:
        pass


def _export(tenant_id: int, query: str) -> tuple[float, float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    result = export_csv(query, progress=_Progress(tenant_id))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20, result["rows"]


def _bare_dump(tenant_id: int, where: str) -> float:
    start = time.perf_counter()
    if db.engine.dialect.name == "postgresql":
        raw = db.engine.raw_connection()
        try:
            with (
                raw.cursor() as cursor,
                cursor.copy(
                    f"COPY (SELECT * FROM audit_log WHERE tenant_id = {tenant_id} AND {where} ORDER BY id) "  # noqa: S608
                    "TO STDOUT WITH CSV"
                ) as copy,
            ):
                for _ in copy:
                    pass
        finally:
            raw.close()
    else:
        out = csv.writer(io.StringIO())
        rows = db.session.execute(
            select(AuditEvent.__table__).where(AuditEvent.tenant_id == tenant_id).where(db.text(where))
            .order_by(AuditEvent.id).execution_options(yield_per=5000)
        )  # fmt: skip
        for row in rows:
            out.writerow(row)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="healthcrm-bench-"))
    overrides = {"APP_ENV": "testing", "INSTANCE_PATH": str(workdir), "SECRET_KEY": "bench",
                 "STORAGE_LOCAL_ROOT": str(workdir / "files")}  # fmt: skip
    if not os.environ.get("DATABASE_URL"):
        overrides["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{workdir / 'bench.db'}"
    app = create_app(overrides)
    with app.app_context():
        db.drop_all()
        db.create_all()
        big, small = Tenant(name="Big", slug="big"), Tenant(name="Small", slug="small")
        db.session.add_all([big, small])
        db.session.commit()
        started = time.perf_counter()
        _seed(big.id, args.events)
        _seed(small.id, args.small)
        seeded = time.perf_counter() - started
        views = {
            "first page": AuditFilter(),
            "one patient": AuditFilter(patient=42),
            "one user": AuditFilter(user=7),
            "one month": AuditFilter(date_from=date(2025, 3, 1), date_to=date(2025, 3, 31)),
        }
        print(f"database: {db.engine.dialect.name}; {args.events:,} and {args.small:,} events (seeded in "
              f"{seeded:.0f} s); p95 of {args.repeat} runs")  # fmt: skip
        for label, filters in views.items():
            times = [
                _p95(lambda t=t, f=filters: _page_of(AuditEvent, t, f, "UTC"), args.repeat)
                for t in (big.id, small.id)
            ]
            print(
                f"  viewer, {label:<12} {times[0] * 1000:7.2f} ms   × small clinic {times[0] / times[1]:5.2f}"
            )
        for label, tenant in (("big", big.id), ("small", small.id)):
            # the 20th page: keyset from the 20th page's cursor
            before = db.session.scalar(
                select(AuditEvent.id).where(AuditEvent.tenant_id == tenant).order_by(AuditEvent.id.desc())
                .offset(19 * 50).limit(1)
            )  # fmt: skip
            elapsed = _p95(lambda t=tenant, b=before: _page_of(AuditEvent, t, AuditFilter(before=b), "UTC"),
                           args.repeat)  # fmt: skip
            print(f"  viewer, 20th page ({label}) {elapsed * 1000:7.2f} ms")
        for label, query, where in (
            ("a patient", "patient=42", "patient_id = 42"),
            ("a month", "date_from=2025-03-01&date_to=2025-03-31",
             "occurred_at >= '2025-03-01' AND occurred_at < '2025-04-01'"),
        ):  # fmt: skip
            for size, tenant in (("big", big.id), ("small", small.id)):
                seconds, peak, rows = _export(tenant, query)
                bare = _bare_dump(tenant, where)
                print(f"  CSV export, {label} ({size}): {rows:,} rows in {seconds:.2f} s, "
                      f"peak {peak:.1f} MiB; × bare dump {seconds / bare:5.1f}")  # fmt: skip
        db.session.remove()
        db.drop_all()


if __name__ == "__main__":
    main()
