"""The one function RQ calls: load the Job row by id, run its task in a fresh app context, record
progress, result or error. Running a finished job again does nothing."""

from __future__ import annotations

import traceback

from flask import Flask, current_app, has_app_context
from rq import get_current_job

from ..clock import utcnow
from ..extensions import db
from .models import FAILED, FINISHED, QUEUED, STARTED, Job
from .queue import TASKS

_worker_app: Flask | None = None


def _app() -> Flask:
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _worker_app is None:
        from .. import create_app

        _worker_app = create_app()
    return _worker_app


class Progress:
    """Handed to each task: `progress(40)` updates the Job row and the RQ job's meta."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self, percent: int) -> None:
        percent = max(0, min(100, int(percent)))
        self.job.progress = percent
        db.session.commit()
        rq_job = get_current_job()
        if rq_job is not None:
            rq_job.meta["progress"] = percent
            rq_job.save_meta()


def run_job(job_id: str) -> dict | None:
    # A fresh app context gives the job its own database session, also when it runs inline in a request.
    with _app().app_context():
        job = db.session.get(Job, job_id)
        if job is None:
            return None
        if job.status == FINISHED:
            return job.result
        job.status = STARTED
        job.attempts += 1
        job.started_at = utcnow()
        job.error = None
        db.session.commit()
        try:
            result = TASKS[job.kind](*job.args, progress=Progress(job))
        except Exception as exc:
            db.session.rollback()
            job = db.session.get(Job, job_id)
            rq_job = get_current_job()
            # Inline (embedded) queues run once; a real worker retries while RQ has tries left.
            retrying = rq_job is not None and bool(rq_job.retries_left) and not rq_job.meta.get("inline")
            job.status = QUEUED if retrying else FAILED
            job.error = f"{type(exc).__name__}: {exc}"[:2000]
            if not retrying:
                job.finished_at = utcnow()
            db.session.commit()
            current_app.logger.error("job %s (%s) failed: %s", job_id, job.kind, traceback.format_exc())
            raise
        job.status = FINISHED
        job.progress = 100
        job.result = result if isinstance(result, dict) else None
        job.finished_at = utcnow()
        db.session.commit()
        return job.result

