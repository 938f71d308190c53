"""Enqueueing jobs on RQ, with a Job row the user can watch.

With REDIS_URL set, jobs go to a real Redis queue and `python worker.py` runs them. A job that raises is
tried 3 times in all: RQ's `Retry(max=...)` counts retries after the first run, so `JOB_MAX_RETRIES` is 2,
with the waits in `JOB_RETRY_INTERVALS` between tries; after the third failure the job is marked failed.

Without REDIS_URL, a fake in-process Redis runs jobs inline, at once, in the same process (the embedded
default); RQ ignores retries there, so an inline job runs once.

Jobs are stored with RQ's JSON serializer: a pickle read back from Redis would be code execution. And a
job may only name a function the app registered (`registry.py`): the JSON serializer alone would still let
a job planted in Redis name `os.system`.
"""

from __future__ import annotations

import uuid

import fakeredis
import redis
from flask import current_app
from rq import Callback, Queue, Retry
from rq.serializers import JSONSerializer

from ..clock import utcnow
from ..extensions import db
from ..tenancy import get_scoped
from .models import FAILED, Job
from .registry import TASKS, RegisteredJob, task
from .runner import record_lost_run, run_job

__all__ = ["TASKS", "enqueue", "get_queue", "redis_connection", "task"]

JOB_TIMEOUT_SECONDS = 15 * 60
RESULT_TTL_SECONDS = 24 * 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600
# Retries after the first run: 3 tries in all.
JOB_MAX_RETRIES = 2

_fake_server = fakeredis.FakeServer()


def redis_connection() -> redis.Redis:
    """The Redis the app's queues live on: REDIS_URL, or the process-wide fake server."""
    url = current_app.config["REDIS_URL"]
    if url:
        return redis.Redis.from_url(url)
    return fakeredis.FakeRedis(server=_fake_server)


def get_queue(
    name: str | None = None, *, connection: redis.Redis | None = None, is_async: bool | None = None
) -> Queue:
    """The app's queue (RQ_QUEUE unless `name` is given), asynchronous when REDIS_URL is set."""
    if is_async is None:
        is_async = bool(current_app.config["REDIS_URL"])
    return Queue(
        name or current_app.config["RQ_QUEUE"],
        connection=connection if connection is not None else redis_connection(),
        is_async=is_async,
        serializer=JSONSerializer,
        job_class=RegisteredJob,
    )


def enqueue(
    kind: str,
    *args: int | str,
    tenant_id: int | None,
    user_id: int | None = None,
    label: str = "",
    queue: Queue | None = None,
    job_id: str | None = None,
) -> str:
    """Record a Job row (committed, so the worker can load it) and put the job on the queue.

    Call after the service has committed its own change, or with that change still pending when it names
    the job (`job_id`, made by the caller): then the change and the Job row commit together, or neither.
    Returns the job id. With an inline queue the job has already run when this returns (its failure is
    recorded on the row, not raised).
    """
    if kind not in TASKS:
        raise KeyError(f"no job registered as {kind!r}")
    job_id = job_id or str(uuid.uuid4())
    db.session.add(
        Job(id=job_id, tenant_id=tenant_id, user_id=user_id, kind=kind, label=label or kind, args=list(args))
    )
    db.session.commit()
    if queue is None:
        queue = get_queue()
    try:
        queue.enqueue(
            run_job,
            job_id,
            job_id=job_id,
            retry=Retry(max=JOB_MAX_RETRIES, interval=current_app.config["JOB_RETRY_INTERVALS"]),
            on_failure=Callback(record_lost_run),
            job_timeout=JOB_TIMEOUT_SECONDS,
            result_ttl=RESULT_TTL_SECONDS,
            failure_ttl=FAILURE_TTL_SECONDS,
            description=f"{kind} {args}",
            meta={"inline": not queue.is_async, "kind": kind},
        )
    except redis.RedisError:
        # Without this the row would say "waiting" forever and its progress fragment would never stop.
        db.session.rollback()
        job = get_scoped(Job, job_id, tenant_id)
        if job is not None:
            job.status = FAILED
            job.error = "The job could not be queued; try again in a moment."
            job.finished_at = utcnow()
            db.session.commit()
        raise
    return job_id
