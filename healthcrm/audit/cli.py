"""`flask audit verify`."""

import click
from flask.cli import AppGroup

from .services import verify_chain

audit_cli = AppGroup("audit", help="Audit log tools.")


@audit_cli.command("verify")
@click.option("--tenant", "tenant_id", type=int, default=None, help="Check one clinic's chain only.")
def verify_command(tenant_id: int | None) -> None:
    """Walk the hash chains and report the first broken row."""
    report = verify_chain(tenant_id, all_chains=tenant_id is None)
    if report.intact:
        chains = ", ".join(
            f"{'system' if t is None else f'clinic {t}'}: {n}"
            for t, n in sorted(report.chains.items(), key=lambda item: (item[0] is not None, item[0] or 0))
        )
        click.echo(f"Audit chain intact: {report.checked} events checked ({chains or 'no events'}).")
        return
    click.echo(
        f"Audit chain BROKEN at event {report.broken_event_id} "
        f"(clinic {report.broken_tenant_id}): {report.reason}. "
        f"{report.checked - 1} events before it are intact.",
        err=True,
    )
    raise SystemExit(1)
