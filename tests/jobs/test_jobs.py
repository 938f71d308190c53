"""Background jobs: the Job row the user watches, the JSON serializer, progress, idempotence, retries on a
real RQ worker, and the htmx progress fragment."""

from __future__ import annotations

import json
import socket
import uuid
import zlib
from collections import Counter
from pathlib import Path

import pytest
import redis
from rq import get_current_job
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import select, update

from healthcrm.extensions import db
from healthcrm.jobs.models import DONE_STATUSES, FAILED, FINISHED, QUEUED, STARTED, Job
from healthcrm.jobs.queue import JOB_MAX_RETRIES, enqueue, get_queue, redis_connection, task
from healthcrm.jobs.registry import RegisteredSimpleWorker
from healthcrm.jobs.runner import run_job
from healthcrm.patients.models import Patient
from healthcrm.tenancy import scoped
from healthcrm.tenant_scope import TENANT_SCOPE_VIOLATIONS
from tests.factories import login, make_patient, make_tenant, make_user
from tests.test_tenant_scope import PROBED

# Test-only tasks: they exist in this process only, so they run inline or on a worker started here,
# on queues whose names the session's `python worker.py` (CI) does not listen to.
CALLS: Counter[str] = Counter()


@task("tests.add")
def add_numbers(a: int, b: int, *, progress) -> dict:
    return {"sum": a + b}


@task("tests.append_line")
def append_line(path: str, *, progress) -> dict:
    with open(path, "a") as handle:
        handle.write("ran\n")
    return {"lines": len(Path(path).read_text().splitlines())}


@task("tests.report_progress")
def report_progress(*, progress) -> dict:
    progress(40)
    rq_job = get_current_job()
    assert rq_job is not None
    # Read back through another connection: the row's progress is committed, not just in this session.
    with db.engine.connect() as connection:
        stored = connection.scalar(select(Job.progress).where(Job.id == rq_job.id))
    return {"row": stored, "meta": rq_job.get_meta(refresh=True)["progress"]}


@task("tests.flaky")
def flaky(key: str, failures: int, *, progress) -> dict:
    CALLS[key] += 1
    if CALLS[key] <= failures:
        raise RuntimeError(f"flaky failure {CALLS[key]}")
    return {"calls": CALLS[key]}


# The tenant-scope check counts only the app's own queries: these tasks send theirs through the probe that
# tests/test_tenant_scope.py compiles under a file name inside the package.
@task("tests.every_clinics_patients")
def every_clinics_patients(*, progress) -> dict:
    return {"count": len(PROBED["session_call"]("scalars", select(Patient)).all())}


@task("tests.own_clinics_patients")
def own_clinics_patients(*, progress) -> dict:
    return {"count": len(PROBED["session_call"]("scalars", scoped(Patient, progress.tenant_id)).all())}


def _queue(*, is_async: bool):
    """A queue of this test's own, on the Redis the app uses (the fake server, or REDIS_URL in CI)."""
    return get_queue(f"tests-jobs-{uuid.uuid4().hex[:8]}", is_async=is_async)


def _job(job_id: str) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


@pytest.fixture
def clinic(app):
    return make_tenant()


@pytest.fixture(autouse=True)
def _settle_leftover_jobs(app):
    yield
    # Rows made by hand here, or left on this module's own queues, are never run by the session's worker
    # (CI): mark them done so the app fixture does not wait for them.
    db.session.rollback()
    db.session.execute(update(Job).where(Job.status.notin_(DONE_STATUSES)).values(status=FAILED))
    db.session.commit()


def test_inline_job_finishes_with_result_and_full_progress(clinic):
    job_id = enqueue("tests.add", 2, 3, tenant_id=clinic.id, label="Add", queue=_queue(is_async=False))

    job = _job(job_id)
    assert (job.status, job.progress, job.result, job.attempts) == (FINISHED, 100, {"sum": 5}, 1)
    assert job.args == [2, 3]
    assert job.error is None
    assert job.started_at is not None and job.finished_at is not None


def test_jobs_are_stored_as_json_not_pickle(clinic):
    queue = _queue(is_async=True)
    job_id = enqueue("tests.add", 4, 5, tenant_id=clinic.id, queue=queue)

    raw = redis_connection().hgetall(f"rq:job:{job_id}")
    payload = json.loads(zlib.decompress(raw[b"data"]))
    assert payload[0] == "healthcrm.jobs.runner.run_job"
    assert payload[2] == [job_id]
    assert json.loads(raw[b"meta"]) == {"inline": False, "kind": "tests.add"}
    rq_job = queue.fetch_job(job_id)
    assert rq_job.serializer is JSONSerializer
    assert rq_job.retries_left == JOB_MAX_RETRIES
    assert rq_job.retry_intervals == [0, 0]
    queue.empty()


def test_enqueue_refuses_an_unknown_kind(clinic):
    with pytest.raises(KeyError):
        enqueue("tests.no_such_task", tenant_id=clinic.id, queue=_queue(is_async=False))
    assert db.session.scalars(select(Job)).all() == []


def test_a_job_that_cannot_be_queued_is_marked_failed(clinic):
    unreachable = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)

    with pytest.raises(redis.ConnectionError):
        enqueue("tests.add", 1, 2, tenant_id=clinic.id, queue=get_queue("tests-down", connection=unreachable))

    job = db.session.scalars(select(Job)).one()
    assert (job.status, job.attempts) == (FAILED, 0)
    assert job.error == "The job could not be queued; try again in a moment."


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_progress_updates_the_row_and_the_rq_job_meta(clinic):
    job_id = enqueue("tests.report_progress", tenant_id=clinic.id, queue=_queue(is_async=False))

    job = _job(job_id)
    assert job.status == FINISHED
    assert job.result == {"row": 40, "meta": 40}


def test_running_a_finished_job_again_changes_nothing(clinic, tmp_path):
    target = tmp_path / "runs.txt"
    job_id = enqueue("tests.append_line", str(target), tenant_id=clinic.id, queue=_queue(is_async=False))
    assert target.read_text() == "ran\n"

    assert run_job(job_id) == {"lines": 1}
    assert run_job(job_id) == {"lines": 1}

    assert target.read_text() == "ran\n"
    job = _job(job_id)
    assert (job.status, job.attempts) == (FINISHED, 1)


def test_inline_failure_is_recorded_once_and_not_raised(clinic):
    key = uuid.uuid4().hex
    job_id = enqueue("tests.flaky", key, 99, tenant_id=clinic.id, queue=_queue(is_async=False))

    job = _job(job_id)
    # Inline queues ignore RQ's retries: one run, then failed.
    assert (job.status, job.attempts, CALLS[key]) == (FAILED, 1, 1)
    assert job.error == "RuntimeError: flaky failure 1"
    assert job.finished_at is not None


def _work(queue) -> None:
    RegisteredSimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(burst=True)


def test_a_failing_job_is_retried_until_it_succeeds(clinic):
    key = uuid.uuid4().hex
    queue = _queue(is_async=True)
    job_id = enqueue("tests.flaky", key, 2, tenant_id=clinic.id, queue=queue)
    assert _job(job_id).status == QUEUED

    _work(queue)

    job = _job(job_id)
    assert (job.status, job.attempts, job.progress) == (FINISHED, 3, 100)
    assert job.result == {"calls": 3}
    assert job.error is None
    assert queue.fetch_job(job_id).get_status() == JobStatus.FINISHED


def test_a_job_that_always_fails_is_tried_three_times(clinic):
    key = uuid.uuid4().hex
    queue = _queue(is_async=True)
    job_id = enqueue("tests.flaky", key, 99, tenant_id=clinic.id, queue=queue)

    _work(queue)

    job = _job(job_id)
    assert CALLS[key] == 1 + JOB_MAX_RETRIES == 3
    assert (job.status, job.attempts) == (FAILED, 3)
    assert job.error == "RuntimeError: flaky failure 3"
    assert job.finished_at is not None
    rq_job = queue.fetch_job(job_id)
    assert rq_job.get_status() == JobStatus.FAILED
    assert rq_job.retries_left == 0


def test_a_job_abandoned_by_a_dead_worker_is_marked_on_its_row(clinic):
    # A worker killed mid-job leaves it "started"; another worker's cleanup retries or fails it, and the
    # row must follow, or its progress fragment would poll forever.
    queue = _queue(is_async=True)
    job_id = enqueue("tests.add", 1, 1, tenant_id=clinic.id, queue=queue)
    queue.remove(job_id)  # off the queue, as if a worker had taken it
    job = _job(job_id)
    job.status, job.attempts = STARTED, 1
    db.session.commit()
    rq_job = RQJob.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    rq_job.retries_left = 0
    rq_job.save()
    registry = StartedJobRegistry(queue.name, connection=queue.connection, serializer=JSONSerializer)
    queue.connection.zadd(registry.key, {f"{job_id}:lost-execution": 1})

    registry.cleanup()

    job = _job(job_id)
    assert job.status == FAILED
    assert job.error == "The job stopped unexpectedly (AbandonedJobError)."


def test_a_run_whose_work_horse_died_is_marked_and_retried(clinic):
    # The forking worker's own hook for a work-horse killed mid-job (out of memory, kill -9): RQ calls
    # handle_job_failure without running the job's failure callback.
    from worker import AppWorker

    queue = _queue(is_async=True)
    job_id = enqueue("tests.add", 2, 2, tenant_id=clinic.id, queue=queue)
    queue.remove(job_id)
    job = _job(job_id)
    job.status, job.attempts = STARTED, 1
    db.session.commit()
    worker = AppWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    rq_job = queue.fetch_job(job_id)

    worker.handle_job_failure(rq_job, queue, exc_string="Work-horse terminated unexpectedly")

    job = _job(job_id)
    assert (job.status, job.error) == (QUEUED, "The worker running this job stopped.")
    assert queue.job_ids == [job_id]
    _work(queue)
    job = _job(job_id)
    assert (job.status, job.attempts, job.result, job.error) == (FINISHED, 2, {"sum": 4}, None)


# --- the progress fragment -------------------------------------------------------------------------------


def _make_job(tenant, user, status: str, progress: int = 0) -> Job:
    job = Job(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        user_id=user.id,
        kind="tests.add",
        label="Monthly export",
        args=[],
        status=status,
        progress=progress,
    )
    db.session.add(job)
    db.session.commit()
    return job


HX = {"HX-Request": "true"}


def test_fragment_polls_while_running_and_stops_when_done(client, clinic):
    doctor = make_user(clinic, "doctor")
    job = _make_job(clinic, doctor, STARTED, progress=40)
    login(client, doctor.email)

    running = client.get(f"/jobs/{job.id}", headers=HX)
    html = running.get_data(as_text=True)
    assert running.status_code == 200
    assert "<html" not in html
    assert 'data-hx-trigger="every 1s"' in html
    assert f'data-hx-get="/jobs/{job.id}"' in html
    assert 'value="40"' in html
    assert "HX-Request" in running.headers["Vary"]

    job.status, job.progress, job.result = FINISHED, 100, {"sent": True}
    db.session.commit()
    done = client.get(f"/jobs/{job.id}", headers=HX)
    html = done.get_data(as_text=True)
    assert done.status_code == 286
    assert "<html" not in html
    assert "data-hx-trigger" not in html
    assert "Done" in html


def test_failed_job_fragment_shows_the_error_escaped_and_stops(client, clinic):
    doctor = make_user(clinic, "doctor")
    job = _make_job(clinic, doctor, FAILED)
    job.error = "ValueError: <script>alert(1)</script>"
    db.session.commit()
    login(client, doctor.email)

    response = client.get(f"/jobs/{job.id}", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 286
    assert "Failed" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html


def test_without_htmx_the_full_page_answers(client, clinic):
    doctor = make_user(clinic, "doctor")
    running = _make_job(clinic, doctor, STARTED)
    finished = _make_job(clinic, doctor, FINISHED, progress=100)
    login(client, doctor.email)

    for job in (running, finished):
        page = client.get(f"/jobs/{job.id}")
        assert page.status_code == 200
        assert "<html" in page.get_data(as_text=True)
        assert "Monthly export" in page.get_data(as_text=True)
    listing = client.get("/jobs")
    assert listing.status_code == 200
    assert listing.get_data(as_text=True).count("Monthly export") == 2


def test_a_job_of_another_clinic_is_not_found(client, clinic):
    admin = make_user(clinic, "admin")
    other = make_tenant("Other Clinic")
    their_job = _make_job(other, make_user(other, "admin"), STARTED)
    login(client, admin.email)

    assert client.get(f"/jobs/{their_job.id}", headers=HX).status_code == 404
    assert client.get(f"/jobs/{their_job.id}").status_code == 404
    assert their_job.id not in client.get("/jobs").get_data(as_text=True)


def test_only_admins_see_jobs_started_by_someone_else(client, clinic):
    doctor = make_user(clinic, "doctor")
    nurse = make_user(clinic, "nurse")
    admin = make_user(clinic, "admin")
    nurses_job = _make_job(clinic, nurse, STARTED)

    login(client, doctor.email)
    assert client.get(f"/jobs/{nurses_job.id}", headers=HX).status_code == 404
    assert nurses_job.id not in client.get("/jobs").get_data(as_text=True)
    client.post("/logout", data={})

    login(client, admin.email)
    assert client.get(f"/jobs/{nurses_job.id}", headers=HX).status_code == 200
    assert nurses_job.id in client.get("/jobs").get_data(as_text=True)


def test_jobs_pages_need_sign_in(client, clinic):
    job = _make_job(clinic, make_user(clinic, "doctor"), STARTED)

    assert client.get(f"/jobs/{job.id}", headers=HX).status_code == 401
    assert client.get(f"/jobs/{job.id}").status_code == 302


def test_a_job_reading_clinic_data_without_its_clinic_is_caught(clinic):
    make_patient(clinic)
    make_patient(make_tenant())
    queue = _queue(is_async=False)
    leaky = _job(enqueue("tests.every_clinics_patients", tenant_id=clinic.id, queue=queue))
    assert leaky.status == FAILED
    assert "TenantScopeError" in leaky.error and "SELECT of patients" in leaky.error
    assert len(TENANT_SCOPE_VIOLATIONS) == 1
    TENANT_SCOPE_VIOLATIONS.clear()  # made on purpose
    scoped_job = _job(enqueue("tests.own_clinics_patients", tenant_id=clinic.id, queue=queue))
    assert (scoped_job.status, scoped_job.result) == (FINISHED, {"count": 1})
