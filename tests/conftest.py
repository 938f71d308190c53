"""Test fixtures: one app per test process, a real database reset before each test, a CSRF-aware client,
and sign-in helpers.

- SQLite (the default): each test starts from a copy of a small template file (the schema, and the part of
  the ICD-10-CM list the code and tests name; `@pytest.mark.icd10_full` copies a template with all of it).
  A copy, not a transaction rolled back: tests with real threads, or a worker process, need real commits.
- PostgreSQL (DATABASE_URL): the schema and the whole ICD-10-CM list once, every other table emptied after
  each test.
- With REDIS_URL set (CI), jobs go through real Redis and a real `python worker.py` process started here;
  `drain_jobs()` waits for them.
- Under pytest-xdist (`-n 2`) each worker process has its own of everything: database (`<name>_gw0`, created
  when missing), Redis db (TEST_REDIS_DBS, e.g. "15,14": one number per worker), RQ queue, worker process,
  outbox, storage folder and live-server port.
- `--at 2028-02-29T12:00:00Z` runs the whole session under time-machine at that instant (ticking), the worker
  process too: tests must pass on any date.

The session's app is shared by the tests: what a test changes in `app.config` or `app.extensions` is put
back after it. A test that changes the URL map gets an app of its own (`@pytest.mark.own_app`).
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import create_engine, event, insert, text

from healthcrm import create_app
from healthcrm.extensions import db, limiter
from healthcrm.files.storage import STORAGE_EXTENSION
from healthcrm.records.icd10 import _packaged_codes, load_codes
from healthcrm.records.models import Icd10Code
from healthcrm.tenant_scope import TENANT_SCOPE_VIOLATIONS

# moto reads it once, at import: bucket CORS rules apply only without moto's allow-everything default.
os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-not-for-production"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')

# --- one of everything per xdist worker --------------------------------------------------------------------
# xdist names its worker processes gw0, gw1, … (and sets PYTEST_XDIST_WORKER before this file is imported).
# The environment is rewritten here, once, so that everything reading it (the session's app, apps that tests
# make themselves, the worker process, tests/test_migrations.py) sees this worker's own resources.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
XDIST_INDEX = int(XDIST_WORKER[2:]) if XDIST_WORKER.startswith("gw") else 0


def _worker_database_url(url: str) -> str:
    if not XDIST_WORKER or not url.startswith("postgresql"):
        return url
    base, name = url.rsplit("/", 1)
    return f"{base}/{name}_{XDIST_WORKER}"


def _worker_redis_url(url: str) -> str:
    numbers = [n.strip() for n in os.environ.get("TEST_REDIS_DBS", "").split(",") if n.strip()]
    if not url or (not numbers and XDIST_INDEX == 0):
        return url
    if len(numbers) <= XDIST_INDEX:
        raise pytest.UsageError(
            f"REDIS_URL with xdist worker {XDIST_WORKER}: set TEST_REDIS_DBS to one Redis db number per "
            "worker (e.g. TEST_REDIS_DBS=15,14): workers must not share rate limits or queues."
        )
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{numbers[XDIST_INDEX]}"))


if XDIST_WORKER:
    if os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = _worker_database_url(os.environ["DATABASE_URL"])
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = _worker_redis_url(os.environ["REDIS_URL"])
    os.environ["RQ_QUEUE"] = f"{os.environ.get('RQ_QUEUE', 'healthcrm-test')}-{XDIST_WORKER}"
    if os.environ.get("MAIL_OUTBOX_DIR"):
        os.environ["MAIL_OUTBOX_DIR"] = str(Path(os.environ["MAIL_OUTBOX_DIR"]) / XDIST_WORKER)

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
RQ_QUEUE = os.environ.get("RQ_QUEUE", "healthcrm-test")
USE_POSTGRES = DATABASE_URL.startswith("postgresql")


# --- time travel: --at -------------------------------------------------------------------------------------


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--at",
        metavar="INSTANT",
        default=None,
        help="run the whole session under time-machine at this instant (ISO 8601, UTC unless it has an "
        "offset), ticking from there; the worker process travels too. Example: --at 2028-02-29T12:00:00Z",
    )


def travel_instant(config) -> datetime | None:
    value = config.getoption("--at")
    if not value:
        return None
    instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def pytest_configure(config) -> None:
    instant = travel_instant(config)
    if instant is not None:
        import time_machine

        config._time_travel = time_machine.travel(instant, tick=True)
        config._time_travel.start()


def pytest_unconfigure(config) -> None:
    travel = getattr(config, "_time_travel", None)
    if travel is not None:
        travel.stop()


def pytest_report_header(config) -> str | None:
    instant = travel_instant(config)
    return f"time travel: the session starts at {instant.isoformat()}" if instant else None


def pytest_collection_modifyitems(config, items) -> None:
    if travel_instant(config) is None:
        return
    for item in items:
        marker = item.get_closest_marker("real_time")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"under --at: {marker.args[0] if marker.args else ''}"))


# --- the client -------------------------------------------------------------------------------------------


class CSRFClient(FlaskClient):
    """A test client that adds the CSRF token to form posts, as the browser would from the page."""

    def csrf_token(self) -> str:
        """The token a page would carry, made as Flask-WTF's `generate_csrf` makes it: a random value kept in
        this client's session cookie, signed with the app's secret. No page is fetched for it."""
        app = self.application
        with self.session_transaction() as session:
            if "csrf_token" not in session:
                session["csrf_token"] = hashlib.sha1(os.urandom(64)).hexdigest()  # noqa: S324 - as Flask-WTF
            raw = session["csrf_token"]
        secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
        return URLSafeTimedSerializer(secret, salt="wtf-csrf-token").dumps(raw)

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


# --- session resources ------------------------------------------------------------------------------------


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
        "RQ_QUEUE": RQ_QUEUE,
        # Fail on any SELECT of clinic data without a tenant criterion (healthcrm/tenancy.py).
        "TENANT_SCOPE_CHECK": True,
    }


# The ICD-10-CM categories ("K70") the code and the tests name: the SQLite template holds these (every code
# under them) and every three-character category, 7% of the list; `@pytest.mark.icd10_full` gets all of it.
ICD10_NAMED = re.compile(r"\b([A-TV-Z]\d[0-9A-Z])(?:\.?[0-9A-Z]{1,4})?\b")


def _named_icd10_categories() -> set[str]:
    found: set[str] = set()
    for folder in (ROOT / "healthcrm", ROOT / "tests"):
        for path in folder.rglob("*"):
            if path.suffix in {".py", ".html", ".js"} and path.is_file():
                found.update(ICD10_NAMED.findall(path.read_text(errors="ignore")))
    return found


def _load_icd10_subset() -> None:
    categories = _named_icd10_categories()
    rows = [row for code, row in _packaged_codes().items() if len(code) == 3 or code[:3] in categories]
    db.session.execute(insert(Icd10Code), rows)
    db.session.commit()


def _ensure_postgres_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _build_template(shared_dir: Path, outbox_dir: Path, url: str, *, full_icd10: bool) -> None:
    app = create_app({**_base_config(shared_dir, outbox_dir), "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        if USE_POSTGRES:
            db.drop_all()
        db.create_all()
        if full_icd10:
            load_codes()
        else:
            _load_icd10_subset()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def template_database(shared_dir, outbox_dir) -> str:
    """The schema once: a small SQLite file to copy before each test, or the PostgreSQL database of
    DATABASE_URL (this worker's own, created when missing)."""
    if USE_POSTGRES:
        _ensure_postgres_database(DATABASE_URL)
        # The ICD-10-CM list is reference data loaded once with the schema, and kept when tables are emptied.
        _build_template(shared_dir, outbox_dir, DATABASE_URL, full_icd10=True)
        return DATABASE_URL
    path = shared_dir / "template.db"
    _build_template(shared_dir, outbox_dir, f"sqlite:///{path}", full_icd10=False)
    return str(path)


@pytest.fixture(scope="session")
def full_icd10_template(shared_dir, outbox_dir, template_database) -> str:
    """A SQLite template with the whole ICD-10-CM list, made only when a test asks for it."""
    if USE_POSTGRES:
        return template_database
    path = shared_dir / "template-full-icd10.db"
    _build_template(shared_dir, outbox_dir, f"sqlite:///{path}", full_icd10=True)
    return str(path)


_EMPTYING: dict[str, object] = {}


def _empty_postgres(url: str) -> None:
    """Empty the tables a test wrote to, and restart their ids, as a fresh database would have them.

    TRUNCATE of all sixty tables took about a second per test (it makes new files for every table), most of
    the suite's time on PostgreSQL. Instead one query finds the tables that hold rows, and only those are
    emptied with DELETE, with triggers off for this session (`session_replication_role = replica`: the audit
    log's append-only trigger and the foreign-key checks, so the order does not matter); their sequences
    are restarted. A few milliseconds."""
    engine, sequences, probe = _emptying(url)
    with engine.begin() as connection:
        used = list(connection.scalars(probe))
        if not used:
            return
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        for name in used:
            connection.execute(text(f'DELETE FROM "{name}"'))  # noqa: S608 - a model's table
            if sequences.get(name):
                connection.execute(text(f"ALTER SEQUENCE {sequences[name]} RESTART"))


def _emptying(url: str):
    """(engine, {table: its id sequence}, the query naming the tables that hold rows), made once per url."""
    if url not in _EMPTYING:
        engine = create_engine(url)
        # The ICD-10-CM list is reference data loaded once with the schema: keep it.
        names = [table.name for table in db.metadata.sorted_tables if table.name != "icd10_codes"]
        with engine.connect() as connection:
            sequences = dict(
                connection.execute(
                    text(
                        "SELECT table_name, pg_get_serial_sequence(quote_ident(table_name), column_name) "
                        "FROM information_schema.columns WHERE table_schema = current_schema() "
                        "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
                    )
                ).all()
            )
        probe = " UNION ALL ".join(f"(SELECT '{name}' FROM \"{name}\" LIMIT 1)" for name in names)  # noqa: S608 - model names
        _EMPTYING[url] = (engine, sequences, text(probe))
    return _EMPTYING[url]


def _copy_sqlite(template: str, target: Path) -> None:
    # No connection is open on `target` (the engine was disposed after the previous test): replace the file
    # and whatever write-ahead log it left.
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(template, target)


def _worker_storage_root(shared_dir: Path) -> Path:
    """With a real worker process, the tests' apps and the worker share one storage folder: the worker's
    file jobs (scans, previews, zips) must find what a test uploaded. Keys are random: tests do not meet."""
    return shared_dir / "storage"


def _test_database_url(shared_dir: Path) -> str:
    return DATABASE_URL if USE_POSTGRES else f"sqlite:///{shared_dir / 'test.db'}"


def _make_app(shared_dir: Path, outbox_dir: Path, live_server_port: int):
    app = create_app(
        {
            **_base_config(shared_dir / "instance", outbox_dir),
            "SQLALCHEMY_DATABASE_URI": _test_database_url(shared_dir),
            # The same address the worker process puts in emailed links (and the browser tests serve on).
            "PUBLIC_URL": f"http://127.0.0.1:{live_server_port}",
        }
    )
    app.test_client_class = CSRFClient
    if not USE_POSTGRES:
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_without_fsync)
    return app


def _sqlite_without_fsync(dbapi_connection, _record) -> None:
    # A test database is thrown away after the test: its commits need not survive a power cut, so SQLite need
    # not wait for the disk (fsync) on each. Locking, isolation and what other connections see are unchanged.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


@pytest.fixture(scope="session")
def session_app(template_database, shared_dir, outbox_dir, live_server_port, rq_worker_process):
    """The app all tests use, made once (Werkzeug compiles its URL rules once), on this process's database."""
    return _make_app(shared_dir, outbox_dir, live_server_port)


@pytest.fixture
def app(request, session_app, template_database, tmp_path, outbox_dir, shared_dir, live_server_port):
    own = request.node.get_closest_marker("own_app") is not None
    app = _make_app(shared_dir, outbox_dir, live_server_port) if own else session_app
    demo = request.node.get_closest_marker("demo_seeded") is not None
    snapshot = request.getfixturevalue("demo_snapshot") if demo else None
    if not USE_POSTGRES:
        full = request.node.get_closest_marker("icd10_full") is not None
        template = request.getfixturevalue("full_icd10_template") if full else template_database
        _copy_sqlite(snapshot or template, shared_dir / "test.db")
    elif snapshot is not None:
        _restore_postgres(DATABASE_URL, snapshot)
    for message in outbox_dir.glob("*.eml"):
        message.unlink()
    config = copy.deepcopy(dict(app.config))
    extensions = dict(app.extensions)
    # Per test, as each test had its own app before: its own files folder, its own storage backend.
    storage = _worker_storage_root(shared_dir) if REDIS_URL else tmp_path / "storage"
    app.config["STORAGE_LOCAL_ROOT"] = str(storage)
    app.config["INSTANCE_PATH"] = str(tmp_path)
    app.extensions.pop(STORAGE_EXTENSION, None)
    if request.node.get_closest_marker("all_tenants") is not None:
        app.config["TENANT_SCOPE_CHECK"] = False
    TENANT_SCOPE_VIOLATIONS.clear()
    limiter.reset()
    try:
        with app.app_context():
            yield app
            if REDIS_URL:
                # Let the worker process finish this test's jobs before the tables are emptied under it.
                _wait_for_jobs(timeout=30)
            db.session.remove()
            db.engine.dispose()
        violations = list(TENANT_SCOPE_VIOLATIONS)
        TENANT_SCOPE_VIOLATIONS.clear()
        assert not violations, "clinic data read without a tenant criterion:\n" + "\n\n".join(violations)
    finally:
        app.config.clear()
        app.config.update(config)
        app.extensions.clear()
        app.extensions.update(extensions)
        if USE_POSTGRES:
            _empty_postgres(DATABASE_URL)


# --- the demo, seeded once ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_snapshot(session_app, template_database, shared_dir, outbox_dir):
    """The demo clinics as `flask demo` makes them, seeded once per test process (seeding takes seconds):
    on SQLite a template file, on PostgreSQL the rows of each table (COPY), restored before each test marked
    `@pytest.mark.demo_seeded`. Such a test starts where a first `seed_demo(None)` would leave it."""
    from healthcrm.demo.data import seed_demo

    if not USE_POSTGRES:
        path = shared_dir / "template-demo.db"
        shutil.copyfile(template_database, path)
        app = create_app(
            {**_base_config(shared_dir / "demo", outbox_dir), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"}
        )
        with app.app_context():
            seed_demo(None)
            db.session.remove()
            db.engine.dispose()
        return str(path)
    with session_app.app_context():
        seed_demo(None)
        if REDIS_URL:
            _wait_for_jobs(timeout=60)
        db.session.remove()
    snapshot = _dump_postgres(DATABASE_URL)
    _empty_postgres(DATABASE_URL)
    return snapshot


def _dump_postgres(url: str) -> dict:
    engine, sequences, probe = _emptying(url)
    tables: dict[str, bytes] = {}
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        used = [row[0] for row in cursor.execute(str(probe)).fetchall()]
        for name in used:
            with cursor.copy(f'COPY "{name}" TO STDOUT') as copy:
                tables[name] = b"".join(bytes(chunk) for chunk in copy)
        values = {}
        for name in used:
            if sequences.get(name):
                values[sequences[name]] = cursor.execute(
                    f"SELECT last_value, is_called FROM {sequences[name]}"  # noqa: S608 - a model's sequence
                ).fetchone()
        raw.commit()
    finally:
        raw.close()
    return {"tables": tables, "sequences": values}


def _restore_postgres(url: str, snapshot: dict) -> None:
    engine, _sequences, _probe = _emptying(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET LOCAL session_replication_role = replica")
        for name, data in snapshot["tables"].items():
            with cursor.copy(f'COPY "{name}" FROM STDIN') as copy:
                copy.write(data)
        for sequence, (value, called) in snapshot["sequences"].items():
            cursor.execute("SELECT setval(%s, %s, %s)", (sequence, value, called))
        raw.commit()
    finally:
        raw.close()


@pytest.fixture
def client(app) -> CSRFClient:
    return app.test_client()


@pytest.fixture(scope="session")
def live_server_port() -> int:
    """One port for the browser tests' live server, known before the worker starts (its emailed links)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The worker process under --at: time-machine travels to the session's instant (ticking), then worker.py runs.
WORKER_AT = (
    "import runpy, sys, time_machine; "
    "time_machine.travel(sys.argv[1], tick=True).start(); "
    "sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.fixture(scope="session")
def rq_worker_process(request, shared_dir, outbox_dir, live_server_port):
    """With REDIS_URL: flush this process's Redis db, run a real `python worker.py` for the whole session."""
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
        "RQ_QUEUE": RQ_QUEUE,
        "PUBLIC_URL": f"http://127.0.0.1:{live_server_port}",
        "STORAGE_LOCAL_ROOT": str(_worker_storage_root(shared_dir)),
        # Checkpoints signed by the worker would outlive the test whose clinic ids they name; scheduled
        # exports are started by the tests' own sweeps (one racing them would start the slot's export).
        # The storage tasks would retag, correct classes, sweep, finish restores and record metrics under the
        # tests' own feet.
        "PERIODIC_SKIP": "audit.checkpoints,audit.verify,audit.archive,tenant_export.scheduled,"
        "storage.tags,storage.restores,storage.classes,storage.sweep,storage.metrics",
    }
    command = [sys.executable, str(ROOT / "worker.py")]
    instant = travel_instant(request.config)
    if instant is not None:
        command = [sys.executable, "-c", WORKER_AT, datetime.now(UTC).isoformat(), str(ROOT / "worker.py")]
    log = open(shared_dir / "worker.log", "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(command, cwd=shared_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
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
