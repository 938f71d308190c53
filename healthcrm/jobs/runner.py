"""The one function RQ calls: load the Job row by id, run its task in a fresh app context, record
progress, result or error. Running a finished job again does nothing."""

from __future__ import annotations

import logging

from flask import Flask, current_app, has_app_context
from rq import get_current_job

from ..clock import utcnow
from ..extensions import db
from ..tenant_scope import ALL_TENANTS
from .models import FAILED, FINISHED, QUEUED, STARTED, Job
from .registry import TASKS, worker_function

log = logging.getLogger(__name__)
_worker_app: Flask | None = None
ERROR_MAX_CHARS = 2000


def _app() -> Flask:
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _worker_app is None:
        from .. import create_app  # noqa: PLC0415 - the package imports this module: no cycle at import time

        _worker_app = create_app()
    return _worker_app


class Progress:
    """Handed to each task: `progress(40)` updates the Job row and the RQ job's `meta["progress"]`.

    It commits the job's database session, so call it between steps, once a step's own change is
    committed by its service.
    """

    def __init__(self, job: Job):
        self.job = job

    @property
    def tenant_id(self) -> int | None:
        """The clinic the job was queued for: a task loads the rows its arguments name within it."""
        return self.job.tenant_id

    def __call__(self, percent: int) -> None:
        percent = max(0, min(100, int(percent)))
        self.job.progress = percent
        db.session.commit()
        rq_job = get_current_job()
        if rq_job is not None:
            rq_job.meta["progress"] = percent
            rq_job.save_meta()


@worker_function
def run_job(job_id: str) -> dict | None:
    """Run the Job row's task once; return its result. A finished job is not run again.

    A task that raises is recorded on the row and the exception re-raised, so RQ retries it: the row
    goes back to "queued" while RQ has retries left (see `queue.JOB_MAX_RETRIES`), else "failed".
    """
    # A fresh app context gives the job its own database session, also when it runs inline in a request.
    with _app().app_context():
        # The runner takes any clinic's job by its id (from the queue); the job's tenant is on its row.
        job = db.session.get(Job, job_id, execution_options=ALL_TENANTS)
        if job is None:
            return None
        if job.status == FINISHED:
            return job.result
        job.status = STARTED
        job.attempts += 1
        job.started_at = utcnow()
        job.finished_at = None
        job.error = None
        db.session.commit()
        try:
            # The tenant-scope check (tests) stays on: a task reads its rows within progress.tenant_id,
            # and only sweeps of every clinic opt out, where they are written.
            result = TASKS[job.kind](*job.args, progress=Progress(job))
        except Exception as exc:
            db.session.rollback()
            job = db.session.get(Job, job_id, execution_options=ALL_TENANTS)  # the runner, any clinic's job
            rq_job = get_current_job()
            # Inline (embedded) queues run once; a real worker retries while RQ has retries left.
            retrying = rq_job is not None and rq_job.should_retry and not rq_job.meta.get("inline")
            _record_failure(job, f"{type(exc).__name__}: {exc}", retrying=retrying)
            current_app.logger.exception("job %s (%s) failed (attempt %s)", job_id, job.kind, job.attempts)
            raise
        job.status = FINISHED
        job.progress = 100
        job.result = result if isinstance(result, dict) else None
        job.finished_at = utcnow()
        db.session.commit()
        return job.result


def _record_failure(job: Job, error: str, *, retrying: bool) -> None:
    job.status = QUEUED if retrying else FAILED
    job.error = error[:ERROR_MAX_CHARS]
    job.finished_at = None if retrying else utcnow()
    db.session.commit()


def record_interrupted_run(job_id: str, error: str, *, retrying: bool) -> None:
    """A run ended without `run_job` recording it (worker killed, job abandoned): say so on the row.

    Only a row still "started" is changed; a failure `run_job` recorded itself is left as it is.
    """
    with _app().app_context():
        job = db.session.get(Job, job_id, execution_options=ALL_TENANTS)  # the runner, any clinic's job
        if job is not None and job.status == STARTED:
            _record_failure(job, error, retrying=retrying)


@worker_function
def record_lost_run(rq_job, _connection, exc_type, _exc_value, _traceback) -> None:
    """RQ failure callback. It also runs when a worker cleans up a job another, dead worker had started."""
    try:
        reason = getattr(exc_type, "__name__", "unknown error")
        record_interrupted_run(
            rq_job.id, f"The job stopped unexpectedly ({reason}).", retrying=rq_job.should_retry
        )
    except Exception:
        # A raising callback would stop RQ from retrying or failing the job; the log is enough here.
        log.exception("could not record the end of job %s", rq_job.id)
