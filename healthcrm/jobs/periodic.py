"""Work that repeats on its own (not per clinic): each run schedules the next on RQ's scheduler.

`python worker.py` starts the chain (`ensure_scheduled`); every worker does, and the fixed job id makes
them share one chain. Without Redis (the embedded default) nothing repeats: `make run` runs each once at
start, and `flask periodic run NAME` runs one by hand (or from the system's cron).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import timedelta

import click
from flask.cli import AppGroup
from rq import Queue, get_current_job

from ..extensions import db
from .registry import RegisteredJob, worker_function
from .runner import _app

log = logging.getLogger(__name__)

# name: (interval, "module:function") — the function takes no arguments and returns something printable.
PERIODIC: dict[str, tuple[timedelta, str]] = {
    "sharing.sweep": (timedelta(hours=1), "healthcrm.sharing.services:sweep_expired"),
    "sharing.exports": (timedelta(hours=1), "healthcrm.sharing.export_tasks:delete_old_exports"),
    "portal.events": (timedelta(minutes=1), "healthcrm.portal.events:sweep_unhandled"),
    "portal.notification_emails": (
        timedelta(minutes=5),
        "healthcrm.portal.notifications:sweep_unsent_emails",
    ),
    "records.result_holds": (timedelta(hours=1), "healthcrm.records.result_holds:release_expired_holds"),
    "scheduling.holds": (timedelta(minutes=1), "healthcrm.scheduling.booking:expire_holds"),
    "scheduling.reminders": (timedelta(minutes=5), "healthcrm.scheduling.notices:send_due_reminders"),
    "scheduling.offers": (timedelta(minutes=1), "healthcrm.scheduling.waitlist:lapse_offers"),
    "audit.checkpoints": (timedelta(days=1), "healthcrm.audit.checkpoints:write_all_checkpoints"),
    "audit.verify": (timedelta(days=1), "healthcrm.audit.alerts:nightly_verify"),
    "audit.share_log_retention": (timedelta(days=1), "healthcrm.audit.retention:delete_expired_share_log"),
    "retention.purged_files": (timedelta(days=1), "healthcrm.retention.services:finish_purged_files"),
    "audit.exports": (timedelta(hours=1), "healthcrm.audit.csv_export:delete_old_exports"),
    "audit.archive": (timedelta(days=1), "healthcrm.audit.archive:run_archiving"),
    "audit.archive_copies": (timedelta(hours=1), "healthcrm.audit.archive:drop_old_copies"),
    "tenant_export.cleanup": (timedelta(hours=1), "healthcrm.tenant_export.services:delete_old_exports"),
    "tenant_export.scheduled": (
        timedelta(minutes=15),
        "healthcrm.tenant_export.schedule:run_scheduled_exports",
    ),
    "patient_export.cleanup": (timedelta(hours=1), "healthcrm.patient_export.services:delete_old_exports"),
    "storage.tags": (timedelta(days=1), "healthcrm.storage_cost.tags:retag_all_clinics"),
    "storage.restores": (timedelta(minutes=5), "healthcrm.storage_cost.restores:check_restores"),
    "storage.classes": (timedelta(days=1), "healthcrm.storage_cost.restore_tasks:refresh_all_classes"),
    "storage.sweep": (timedelta(days=1), "healthcrm.storage_cost.sweeper:sweep_all"),
    "storage.metrics": (timedelta(days=1), "healthcrm.storage_cost.metrics:record_all_clinics"),
}
FIRST_RUN_AFTER = timedelta(seconds=10)


def _function(name: str) -> Callable[[], object]:
    module, _, attribute = PERIODIC[name][1].partition(":")
    return getattr(importlib.import_module(module), attribute)


def _lock_key(name: str) -> str:
    return f"healthcrm:periodic:{name}"


def _schedule(queue: Queue, name: str, delay: timedelta) -> bool:
    """Schedule a run unless one is already waiting (a Redis key marks it, for as long as the wait)."""
    interval = PERIODIC[name][0]
    if not queue.connection.set(_lock_key(name), "1", nx=True, ex=int((delay + interval).total_seconds())):
        return False
    queue.enqueue_in(delay, run, name)
    return True


def ensure_scheduled(queue: Queue, skip: str = "") -> None:
    """Start the chain of each periodic task, unless a run is already waiting. `skip` (PERIODIC_SKIP, comma
    separated names) leaves some out: the test suite's worker shares one storage folder between tests, and
    must not sign checkpoints of clinics that the next test reuses the ids of."""
    skipped = {name.strip() for name in skip.split(",") if name.strip()}
    for name in PERIODIC:
        if name not in skipped:
            _schedule(queue, name, FIRST_RUN_AFTER)


@worker_function
def run(name: str) -> str:
    """Run one periodic task in the worker's app, then schedule its next run."""

    app = _app()
    with app.app_context():
        try:
            result = _function(name)()
        finally:
            db.session.remove()
    job = get_current_job()
    if job is not None and job.origin:
        queue = Queue(
            job.origin, connection=job.connection, serializer=job.serializer, job_class=RegisteredJob
        )
        queue.connection.delete(_lock_key(name))
        _schedule(queue, name, PERIODIC[name][0])
    log.info("periodic %s: %s", name, result)
    return str(result)


periodic_cli = AppGroup("periodic", help="Work that repeats (a worker schedules it by itself).")


@periodic_cli.command("run")
@click.argument("name", type=click.Choice(sorted(PERIODIC)))
def run_command(name: str) -> None:
    """Run NAME once now."""
    click.echo(f"{name}: {_function(name)()}")
