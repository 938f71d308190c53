"""Run an RQ worker inside the app context: `python worker.py` (the scheduler is on, for retries)."""

from __future__ import annotations

import argparse

from rq import Worker
from rq.serializers import JSONSerializer

from healthcrm import create_app
from healthcrm.jobs.queue import get_queue, redis_connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    parser.add_argument("--no-scheduler", action="store_true", help="do not run the scheduler (retries, delays)")
    args = parser.parse_args()
    app = create_app()
    if not app.config["REDIS_URL"]:
        raise SystemExit("REDIS_URL is not set: without it jobs run inline in the web process; no worker is needed.")
    with app.app_context():
        connection = redis_connection()
        queue = get_queue(connection=connection, is_async=True)
        worker = Worker([queue], connection=connection, serializer=JSONSerializer)
        worker.work(burst=args.burst, with_scheduler=not args.no_scheduler)


if __name__ == "__main__":
    main()
