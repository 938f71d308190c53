"""What the page benchmarks share: a throw-away app on the migrated schema, signing in through the test
client, counting SQL statements, timing a page, and the p95 of the timings.

The scripts run as `python bench/<name>.py`, so this module is imported by its plain name."""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, text

from healthcrm import create_app
from healthcrm.extensions import db

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def bench_app(workdir: Path) -> Flask:
    """The app on a throw-away SQLite file in `workdir`, or on DATABASE_URL."""
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    return create_app(
        {
            "APP_ENV": "testing",
            "INSTANCE_PATH": str(workdir),
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": url,
        }
    )


def migrate_fresh() -> None:
    """The schema as production has it (the migrations), on emptied tables; inside an app context."""
    db.drop_all()
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade()


def analyze() -> None:
    """Fresh PostgreSQL tables have no planner statistics until autovacuum gets to them; a clinic's have."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def sign_in(client, email: str, password: str) -> None:
    page = client.get("/forgot").get_data(as_text=True)
    token = CSRF_META.search(page).group(1)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    if response.status_code not in (302, 303):
        raise SystemExit(f"Sign-in failed with {response.status_code}")


class QueryCounter:
    def __init__(self, engine):
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args) -> None:
        self.count += 1


def time_page(
    client, url: str, requests: int, counter: QueryCounter | None, *, must_show: str | None = None
) -> tuple[list[float], list[int]]:
    """Seconds and SQL statements per request, after one warm-up request (which must show `must_show`)."""
    warm_up = client.get(url)
    if warm_up.status_code != 200 or (must_show and must_show not in warm_up.get_data(as_text=True)):
        raise SystemExit(f"{url} answered {warm_up.status_code} without {must_show!r}")
    seconds, queries = [], []
    for _ in range(requests):
        before = counter.count if counter else 0
        start = time.perf_counter()
        response = client.get(url)
        seconds.append(time.perf_counter() - start)
        queries.append((counter.count - before) if counter else 0)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    return seconds, queries


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]
