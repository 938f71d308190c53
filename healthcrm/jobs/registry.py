"""What a worker may run: the functions the app registers, and nothing else.

An RQ job in Redis is a dotted function name plus arguments, and a plain RQ worker imports and calls
whatever it names: the JSON serializer stops pickle, not `os.system`. Anyone who can write to Redis could
then run code on every worker. So:

- `@worker_function` marks the few functions RQ itself calls (the job runner, periodic work, the failure
  callback); `@task(kind)` registers the app's job functions by kind, which only the runner calls, after
  loading the Job row.
- `RegisteredJob` refuses, before importing anything, a job whose function, callbacks or instance are not
  the app's own, and never sends RQ webhooks (the app sets none; they would make the worker call any URL).
- `RegisteredJobsOnly` (mixed into the worker classes) marks such a job failed, without running it, without
  retries or callbacks, and logs it.

Queues (`queue.get_queue`) and workers (`worker.py`, the tests' `RegisteredSimpleWorker`) use these classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rq import SimpleWorker, Worker
from rq.job import Job as RQJob
from rq.job import JobStatus

log = logging.getLogger(__name__)

TASKS: dict[str, Callable] = {}
WORKER_FUNCTIONS: set[str] = set()


class RefusedJob(Exception):
    """A job in Redis names something the app has not registered: it is never run."""


def worker_function(fn: Callable) -> Callable:
    """Let RQ call `fn` (by its dotted name) as a job or a job callback."""
    WORKER_FUNCTIONS.add(f"{fn.__module__}.{fn.__qualname__}")
    return fn


def task(kind: str) -> Callable[[Callable], Callable]:
    """Register a job function under a stable kind name (what the Job row stores)."""

    def decorator(fn: Callable) -> Callable:
        TASKS[kind] = fn
        return fn

    return decorator


def _function_refusal(job: RQJob) -> str | None:
    try:
        func_name, instance = job.func_name, job.instance
    except Exception as exc:  # a payload that does not even deserialize
        return f"unreadable job data ({type(exc).__name__})"
    if func_name not in WORKER_FUNCTIONS:
        return f"{func_name!r} is not a registered job function"
    if instance is not None:
        return "a job may not name an object to call a method on"
    return None


def _callback_refusal(name: str | None) -> str | None:
    if name and name not in WORKER_FUNCTIONS:
        return f"callback {name!r} is not a registered job function"
    return None


def refusal(job: RQJob) -> str | None:
    """Why `job` may not run (a sentence for the log and the failed registry), or None if it may."""
    reason = _function_refusal(job)
    for name in (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name):
        reason = reason or _callback_refusal(name)
    if reason is None and job.webhooks:
        reason = "the app sends no job webhooks"
    return reason


class RegisteredJob(RQJob):
    """An RQ job that imports and calls only registered functions, wherever RQ resolves them (a worker, a
    work-horse, an inline queue, a registry's clean-up of an abandoned job)."""

    @staticmethod
    def _refuse(reason: str | None) -> None:
        if reason:
            log.error("refused to import %s", reason)
            raise RefusedJob(reason)

    @property
    def func(self):
        self._refuse(_function_refusal(self))
        return super().func

    @property
    def success_callback(self):
        self._refuse(_callback_refusal(self._success_callback_name))
        return super().success_callback

    @property
    def failure_callback(self):
        self._refuse(_callback_refusal(self._failure_callback_name))
        return super().failure_callback

    @property
    def stopped_callback(self):
        self._refuse(_callback_refusal(self._stopped_callback_name))
        return super().stopped_callback

    def send_webhooks(self, status, *, exc_string=None) -> None:
        if self.webhooks:
            log.warning("job %s names webhooks; the app sends none, so none is sent", self.id)


class RegisteredJobsOnly:
    """Worker mixin: a job naming anything unregistered is failed at once, never run or retried."""

    job_class = RegisteredJob

    def execute_job(self, job: RQJob, queue) -> None:
        reason = refusal(job)
        if reason is None:
            super().execute_job(job, queue)  # type: ignore[misc]
            return
        log.error("refused job %s from queue %s: %s", job.id, queue.name, reason)
        with self.connection.pipeline() as pipeline:  # type: ignore[attr-defined]
            # It never reached the started registry; take it off the queue's in-flight list too.
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            job.set_status(JobStatus.FAILED, pipeline=pipeline)
            job._handle_failure(f"RefusedJob: {reason}", pipeline, worker_name=self.name)  # type: ignore[attr-defined]
            pipeline.execute()


class RegisteredWorker(RegisteredJobsOnly, Worker):
    """The forking worker `python worker.py` runs."""


class RegisteredSimpleWorker(RegisteredJobsOnly, SimpleWorker):
    """The same rules without forking (fakeredis, tests)."""
