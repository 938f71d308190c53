"""Run an RQ worker inside the app context: `python worker.py` (the scheduler is on, for retries).

It runs only the functions the app registers as jobs (`healthcrm/jobs/registry.py`): a job planted in
Redis that names anything else is logged and marked failed, never run."""

from __future__ import annotations

import argparse
import os

from rq.serializers import JSONSerializer

from healthcrm import create_app
from healthcrm.extensions import db
from healthcrm.jobs.periodic import ensure_scheduled
from healthcrm.jobs.queue import get_queue, redis_connection
from healthcrm.jobs.registry import RegisteredWorker
from healthcrm.jobs.runner import record_interrupted_run


class AppWorker(RegisteredWorker):
    """An RQ worker that also records on the Job row a run whose work-horse died (killed, out of memory)."""

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string=""):
        # Before RQ requeues the job, so a new run cannot start before the row says what happened.
        retrying = job.should_retry and self._stopped_job_id != job.id
        try:
            record_interrupted_run(job.id, "The worker running this job stopped.", retrying=retrying)
        except Exception:
            self.log.exception("could not record the end of job %s", job.id)
        return super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    parser.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run the scheduler (retries after a wait, delayed jobs)",
    )
    args = parser.parse_args()
    app = create_app()
    if not app.config["REDIS_URL"]:
        raise SystemExit("REDIS_URL is not set: jobs run inline in the web process, no worker is needed.")
    with app.app_context():
        # Each job runs in a forked work-horse: it must open its own database connections, never reuse
        # (and so share with its parent) a pooled one.
        engine = db.engine
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        connection = redis_connection()
        queue = get_queue(connection=connection, is_async=True)
        worker = AppWorker([queue], connection=connection, serializer=JSONSerializer)
        if not args.no_scheduler:
            # The expired-link sweep and other periodic work (PERIODIC_SKIP: names left out).
            ensure_scheduled(queue, os.environ.get("PERIODIC_SKIP", ""))
        worker.work(burst=args.burst, with_scheduler=not args.no_scheduler)


if __name__ == "__main__":
    main()
