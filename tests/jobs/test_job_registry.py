"""Jobs can only run what the app defines: a job planted in Redis (plain RQ, JSON serializer) naming
`os.system` or any other function the app did not register is refused, logged and marked failed, never
run, by the worker the app runs (`RegisteredSimpleWorker` here, on fakeredis or the real Redis of
REDIS_URL; `python worker.py` itself when REDIS_URL is set) and by the inline queue."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rq import Callback, Queue, Retry
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from rq.webhook import Webhook

from healthcrm.extensions import db
from healthcrm.jobs.models import FINISHED, Job
from healthcrm.jobs.queue import enqueue, get_queue, redis_connection
from healthcrm.jobs.registry import RegisteredSimpleWorker
from tests.factories import make_tenant

ROOT = Path(__file__).resolve().parents[2]


def write_marker(path: str) -> None:
    """Importable and harmless, but not registered as a job: it must never run either."""
    Path(path).write_text("ran")


def write_marker_callback(job, _connection, *_result_or_error) -> None:
    """The same as an RQ callback: the marker's path is the job's first argument."""
    Path(job.args[0]).write_text("ran")


def _queue_name() -> str:
    # A queue of this test's own: the session's `python worker.py` (CI) does not listen to it.
    return f"tests-planted-{uuid.uuid4().hex[:8]}"


def _plant(queue_name: str, func: str, *args, **options):
    """What an attacker with access to Redis would write: a plain RQ job, JSON-serialized."""
    queue = Queue(queue_name, connection=redis_connection(), serializer=JSONSerializer)
    return queue.enqueue(func, *args, **options)


def _work(queue_name: str) -> None:
    queue = get_queue(queue_name, is_async=True)
    RegisteredSimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(burst=True)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "planted-job-ran"


def test_a_planted_os_system_job_is_refused_and_failed_never_run(app, marker, caplog, monkeypatch):
    # Alembic's fileConfig (migration tests) disables existing loggers; the refusal must be logged.
    monkeypatch.setattr(logging.getLogger("healthcrm.jobs.registry"), "disabled", False)
    name = _queue_name()
    planted = _plant(name, "os.system", f"touch {shlex.quote(str(marker))}")

    with caplog.at_level(logging.ERROR, logger="healthcrm.jobs.registry"):
        _work(name)

    assert not marker.exists()
    refused = get_queue(name, is_async=True).fetch_job(planted.id)
    assert refused.get_status(refresh=True) == JobStatus.FAILED
    assert planted.id in refused.failed_job_registry.get_job_ids()
    assert refused.latest_result().exc_string.startswith("RefusedJob: 'os.system' is not a registered")
    assert f"refused job {planted.id}" in caplog.text
    assert not refused.retries_left


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param(None, id="an importable function that is not a registered job"),
        pytest.param(Retry(max=3), id="the same with retries asked for: failed at once, never retried"),
    ],
)
def test_a_planted_job_naming_an_unregistered_function_is_refused(app, marker, retry):
    name = _queue_name()
    planted = _plant(name, f"{__name__}.write_marker", str(marker), retry=retry)

    _work(name)
    _work(name)  # a retry would have been queued again by now

    assert not marker.exists()
    assert Queue(name, connection=redis_connection()).fetch_job(planted.id).get_status() == JobStatus.FAILED


CALLBACK = Callback(f"{__name__}.write_marker_callback")


@pytest.mark.parametrize(
    ("extra_args", "callbacks"),
    [
        pytest.param((), {"on_success": CALLBACK}, id="on success"),
        # One argument too many: the runner raises, so a failure callback would run.
        pytest.param(("extra",), {"on_failure": CALLBACK}, id="on failure"),
        pytest.param((), {"on_stopped": Callback("os.system")}, id="on stopped"),
    ],
)
def test_a_registered_job_with_a_planted_callback_is_refused(app, marker, extra_args, callbacks):
    name = _queue_name()
    # The app's own runner with an id that has no Job row: harmless, so only the callback could do harm.
    planted = _plant(name, "healthcrm.jobs.runner.run_job", str(marker), *extra_args, **callbacks)

    _work(name)

    assert not marker.exists()
    assert Queue(name, connection=redis_connection()).fetch_job(planted.id).get_status() == JobStatus.FAILED


def test_a_planted_job_with_a_webhook_is_refused(app):
    name = _queue_name()
    planted = _plant(
        name,
        "healthcrm.jobs.runner.run_job",
        "no-such-job",
        webhooks=[Webhook("http://127.0.0.1:9/", "failed")],
    )

    _work(name)

    assert Queue(name, connection=redis_connection()).fetch_job(planted.id).get_status() == JobStatus.FAILED


def test_the_inline_queue_refuses_an_unregistered_function(app, marker):
    queue = get_queue(_queue_name(), is_async=False)

    job = queue.enqueue(f"{__name__}.write_marker", str(marker))

    assert not marker.exists()
    assert job.get_status() == JobStatus.FAILED


def test_the_apps_own_jobs_still_run_on_the_registered_worker(app):
    name = _queue_name()
    queue = get_queue(name, is_async=True)
    job_id = enqueue("accounts.email_invitation", 0, tenant_id=make_tenant().id, queue=queue)

    _work(name)

    db.session.expire_all()
    assert db.session.get(Job, job_id).status == FINISHED
    assert queue.fetch_job(job_id).get_status() == JobStatus.FINISHED


@pytest.mark.worker
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL: runs `python worker.py`")
def test_worker_py_refuses_a_planted_os_system_job(app, marker, tmp_path):
    name = _queue_name()
    planted = _plant(name, "os.system", f"touch {shlex.quote(str(marker))}")
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "RQ_QUEUE": name,
        "MAIL_BACKEND": "outbox",
        "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
    }

    finished = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst", "--no-scheduler"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert not marker.exists()
    assert f"refused job {planted.id}" in finished.stdout + finished.stderr
    assert Queue(name, connection=redis_connection()).fetch_job(planted.id).get_status() == JobStatus.FAILED
