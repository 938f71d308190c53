"""`flask audit verify`, `flask audit checkpoint` and `flask audit archive`."""

import click
from flask.cli import AppGroup

from .archive import archive_due, delete_past_retention
from .checkpoints import clinic_ids, verify_checkpoints, write_checkpoint
from .services import verify_chain

audit_cli = AppGroup("audit", help="Audit log tools.")


@audit_cli.command("verify")
@click.option("--tenant", "tenant_id", type=int, default=None, help="Check one clinic's chain only.")
def verify_command(tenant_id: int | None) -> None:
    """Walk the hash chains, then check every signed checkpoint; report the first broken row or the
    missing range."""
    report = verify_chain(tenant_id, all_chains=tenant_id is None)
    if not report.intact:
        click.echo(
            f"Audit chain BROKEN at event {report.broken_event_id} "
            f"(clinic {report.broken_tenant_id}): {report.reason}. "
            f"{report.checked - 1} events before it are intact.",
            err=True,
        )
        raise SystemExit(1)
    chains = ", ".join(
        f"{'system' if t is None else f'clinic {t}'}: {n}"
        for t, n in sorted(report.chains.items(), key=lambda item: (item[0] is not None, item[0] or 0))
    )
    click.echo(f"Audit chain intact: {report.checked} events checked ({chains or 'no events'}).")
    checkpoints = verify_checkpoints(tenant_id)
    if not checkpoints.intact:
        for problem in checkpoints.problems:
            click.echo(f"Checkpoint check FAILED: {problem.description}", err=True)
        raise SystemExit(1)
    click.echo(f"Checkpoints agree with the log: {checkpoints.checked} checked.")


@audit_cli.command("checkpoint")
@click.option("--tenant", "tenant_id", type=int, default=None, help="One clinic only.")
def checkpoint_command(tenant_id: int | None) -> None:
    """Sign each clinic's chain head now and store it (the daily job does the same)."""
    for clinic in [tenant_id] if tenant_id is not None else clinic_ids():
        written = write_checkpoint(clinic)
        lock = " (Object Lock: compliance mode)" if written.locked else ""
        click.echo(
            f"Clinic {clinic}: event {written.event_id} ({written.events} events) → {written.key}{lock}"
        )


@audit_cli.command("archive")
@click.option("--tenant", "tenant_id", type=int, default=None, help="One clinic only.")
def archive_command(tenant_id: int | None) -> None:
    """Move the months older than each clinic's hot window into archive files, and delete archives past
    the audit retention (the daily job does the same)."""
    for clinic in [tenant_id] if tenant_id is not None else clinic_ids():
        archived = archive_due(clinic)
        for archive in archived:
            click.echo(f"Clinic {clinic}: {archive.month}: {archive.events} events → {archive.key}")
        deleted = delete_past_retention(clinic)
        if deleted:
            click.echo(f"Clinic {clinic}: {deleted} archived months past retention deleted.")
        if not archived and not deleted:
            click.echo(f"Clinic {clinic}: nothing to archive.")
