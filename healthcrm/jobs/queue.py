"""Enqueueing jobs on RQ, with a Job row the user can watch.

With REDIS_URL set, jobs go to a real Redis queue and `python worker.py` runs them (3 tries). Without it,
a fake in-process Redis runs them inline, at once, in the same process (the embedded default).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import fakeredis
import redis
from flask import current_app
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from ..extensions import db
from .models import Job

JOB_TIMEOUT_SECONDS = 15 * 60
RESULT_TTL_SECONDS = 24 * 3600

TASKS: dict[str, Callable] = {}
_fake_server = fakeredis.FakeServer()


def task(kind: str) -> Callable[[Callable], Callable]:
    """Register a job function under a stable kind name (what the Job row stores)."""

    def decorator(fn: Callable) -> Callable:
        TASKS[kind] = fn
        return fn

    return decorator


def redis_connection() -> redis.Redis:
    url = current_app.config["REDIS_URL"]
    if url:
        return redis.Redis.from_url(url)
    return fakeredis.FakeRedis(server=_fake_server)


def get_queue(*, connection: redis.Redis | None = None, is_async: bool | None = None) -> Queue:
    if is_async is None:
        is_async = bool(current_app.config["REDIS_URL"])
    return Queue(
        current_app.config["RQ_QUEUE"],
        connection=connection or redis_connection(),
        is_async=is_async,
        serializer=JSONSerializer,
    )


def enqueue(kind: str, *args: int | str, tenant_id: int, user_id: int | None = None, label: str = "",
            queue: Queue | None = None) -> str:
    """Record a Job row (committed, so the worker can load it) and put the job on the queue.

    Call after the service has committed its own change. Returns the job id.
    """
    if kind not in TASKS:
        raise KeyError(f"no job registered as {kind!r}")
    job_id = str(uuid.uuid4())
    db.session.add(Job(id=job_id, tenant_id=tenant_id, user_id=user_id, kind=kind, label=label or kind,
                       args=list(args)))
    db.session.commit()
    queue = queue or get_queue()
    queue.enqueue(
        "healthcrm.jobs.runner.run_job",
        job_id,
        job_id=job_id,
        retry=Retry(max=3, interval=current_app.config["JOB_RETRY_INTERVALS"]),
        job_timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=7 * 24 * 3600,
        description=f"{kind} {args}",
        meta={"inline": not queue.is_async, "kind": kind},
    )
    return job_id
