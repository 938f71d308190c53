"""Test fixtures: a real database per test (SQLite file copied from a migrated-once template, or the
PostgreSQL named by DATABASE_URL, emptied after each test), a CSRF-aware client, and sign-in helpers.

With REDIS_URL set (CI), jobs go through real Redis and a real `python worker.py` process started here;
`drain_jobs()` waits for them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from healthcrm import create_app
from healthcrm.extensions import db, limiter
from healthcrm.records.icd10 import load_codes

# moto reads it once, at import: bucket CORS rules apply only without moto's allow-everything default.
os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
USE_POSTGRES = DATABASE_URL.startswith("postgresql")
TEST_SECRET = "test-secret-key-not-for-production"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class CSRFClient(FlaskClient):
    """A test client that adds the CSRF token to form posts, as the browser would from the page."""

    def csrf_token(self) -> str:
        page = self.get("/forgot").get_data(as_text=True)
        match = CSRF_META.search(page)
        assert match, "no csrf-token meta tag on /forgot"
        return match.group(1)

    def open(self, *args, **kwargs):
        # Each request gets its own app context (its own `g` and database session), as in production,
        # even though the test itself holds one open for its factories and assertions.
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response

    def post(self, *args, **kwargs):
        data = kwargs.get("data")
        if kwargs.pop("csrf", True) and isinstance(data, dict) and "csrf_token" not in data:
            kwargs["data"] = {**data, "csrf_token": self.csrf_token()}
        return super().post(*args, **kwargs)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def outbox_dir(shared_dir) -> Path:
    path = Path(os.environ.get("MAIL_OUTBOX_DIR") or shared_dir / "outbox")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _base_config(instance: Path, outbox: Path) -> dict:
    return {
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": TEST_SECRET,
        "MAIL_BACKEND": "outbox",
        "MAIL_OUTBOX_DIR": str(outbox),
        "STORAGE_LOCAL_ROOT": str(instance / "storage"),
        "JOB_RETRY_INTERVALS": [0, 0],
        "RQ_QUEUE": os.environ.get("RQ_QUEUE", "healthcrm-test"),
    }


@pytest.fixture(scope="session")
def template_database(shared_dir, outbox_dir) -> str:
    """Create the schema once: a SQLite file to copy per test, or the PostgreSQL database of DATABASE_URL."""
    if USE_POSTGRES:
        app = create_app({**_base_config(shared_dir, outbox_dir), "SQLALCHEMY_DATABASE_URI": DATABASE_URL})
        with app.app_context():
            db.drop_all()
            db.create_all()
            load_codes()
            db.session.remove()
            db.engine.dispose()
        return DATABASE_URL
    path = shared_dir / "template.db"
    app = create_app({**_base_config(shared_dir, outbox_dir), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        db.create_all()
        load_codes()
        db.session.remove()
        db.engine.dispose()
    return str(path)


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    # The ICD-10-CM list is reference data loaded once with the schema: keep it.
    tables = ", ".join(table.name for table in db.metadata.sorted_tables if table.name != "icd10_codes")
    with engine.begin() as connection:
        # TRUNCATE does not fire the audit log's row triggers, which refuse DELETE.
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def _worker_storage_root(shared_dir: Path) -> Path:
    """With a real worker process, the tests' apps and the worker share one storage folder: the worker's
    file jobs (scans, previews, zips) must find what a test uploaded. Keys are random: tests do not meet."""
    return shared_dir / "storage"


@pytest.fixture
def app(tmp_path, template_database, outbox_dir, rq_worker_process, live_server_port, shared_dir):
    if USE_POSTGRES:
        url = template_database
    else:
        copy = tmp_path / "test.db"
        shutil.copyfile(template_database, copy)
        url = f"sqlite:///{copy}"
    for message in outbox_dir.glob("*.eml"):
        message.unlink()
    app = create_app(
        {
            **_base_config(tmp_path, outbox_dir),
            "SQLALCHEMY_DATABASE_URI": url,
            # The same address the worker process puts in emailed links (and the browser tests serve on).
            "PUBLIC_URL": f"http://127.0.0.1:{live_server_port}",
            **({"STORAGE_LOCAL_ROOT": str(_worker_storage_root(shared_dir))} if REDIS_URL else {}),
        }
    )
    app.test_client_class = CSRFClient
    limiter.reset()
    with app.app_context():
        yield app
        if REDIS_URL:
            # Let the worker process finish this test's jobs before the tables are emptied under it.
            _wait_for_jobs(timeout=30)
        db.session.remove()
        db.engine.dispose()
    if USE_POSTGRES:
        _empty_postgres(url)


@pytest.fixture
def client(app) -> CSRFClient:
    return app.test_client()


@pytest.fixture(scope="session")
def live_server_port() -> int:
    """One port for the browser tests' live server, known before the worker starts (its emailed links)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def rq_worker_process(shared_dir, outbox_dir, live_server_port):
    """With REDIS_URL: flush the test Redis db and run a real `python worker.py` for the whole session."""
    if not REDIS_URL:
        yield None
        return
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "SECRET_KEY": TEST_SECRET,
        "MAIL_BACKEND": "outbox",
        "MAIL_OUTBOX_DIR": str(outbox_dir),
        "RQ_QUEUE": os.environ.get("RQ_QUEUE", "healthcrm-test"),
        "PUBLIC_URL": f"http://127.0.0.1:{live_server_port}",
        "STORAGE_LOCAL_ROOT": str(_worker_storage_root(shared_dir)),
    }
    log = open(shared_dir / "worker.log", "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=shared_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _wait_for_jobs(timeout: float) -> None:
    """Wait until every job the app queued has finished or failed (at once when jobs run inline).

    The Job rows are the truth: RQ's own registries have a moment, between dequeue and start, when a job is
    in neither. A job waiting for its retry after a failure does not count as pending.
    """
    from healthcrm.jobs.models import QUEUED, STARTED, Job

    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()  # see what the worker committed
        pending = (
            db.session.query(Job)
            .filter((Job.status == STARTED) | ((Job.status == QUEUED) & (Job.attempts == 0)))
            .count()
        )
        db.session.rollback()
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} jobs still queued or running after {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def inline_jobs(app):
    """Run this test's jobs inline, in the test process: for tests that give the app settings the session's
    worker process does not have (another storage backend, a clamd address)."""
    app.config["REDIS_URL"] = ""
    return app


@pytest.fixture
def drain_jobs(app):
    """Wait until every job is finished or failed (at once when jobs run inline)."""

    def wait(timeout: float = 30.0) -> None:
        _wait_for_jobs(timeout)

    return wait
