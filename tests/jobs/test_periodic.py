"""Periodic work: one waiting run at a time, each run schedules the next, and the CLI runs one now."""

from __future__ import annotations

import fakeredis
from rq import Queue
from rq.serializers import JSONSerializer

from healthcrm.jobs import periodic
from healthcrm.jobs.registry import RegisteredJob, RegisteredSimpleWorker


def test_the_chain_starts_once_and_each_run_schedules_the_next(app):
    connection = fakeredis.FakeRedis()
    queue = Queue("periodic-test", connection=connection, serializer=JSONSerializer, job_class=RegisteredJob)
    periodic.ensure_scheduled(queue)
    periodic.ensure_scheduled(queue)  # a second worker starting: nothing more
    assert len(queue.scheduled_job_registry.get_job_ids()) == len(periodic.PERIODIC)

    # Run the waiting sweep now, as the scheduler would when its time comes.
    job = next(
        job
        for job in map(queue.fetch_job, queue.scheduled_job_registry.get_job_ids())
        if job.args == ["sharing.sweep"]
    )
    queue.scheduled_job_registry.remove(job)
    queue._enqueue_job(job)
    RegisteredSimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value() == "0"  # no expired links to sweep
    assert len(queue.scheduled_job_registry.get_job_ids()) == len(periodic.PERIODIC)  # the next run waits


def test_the_cli_runs_a_task_now(app):
    result = app.test_cli_runner().invoke(args=["periodic", "run", "sharing.sweep"])
    assert result.exit_code == 0 and result.output.strip() == "sharing.sweep: 0"
