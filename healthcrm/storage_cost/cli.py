"""`flask storage`: the storage cost area's commands. `flask storage lifecycle` shows the lifecycle rules
the clinics' settings ask for against what the bucket has, with the rule checker's warnings, and
`--apply` writes them. `flask storage sweep` is the sweeper's (`sweeper.py`), `flask storage metrics` the
metrics job's (`metrics_cli.py`)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..accounts.models import Tenant
from ..extensions import db
from ..tenant_scope import ALL_TENANTS
from .checker import check_rules
from .lifecycle import UNCHANGED, LifecycleError, LifecyclePlan, apply_bucket, bucket_plan
from .metrics_cli import metrics_command
from .sweeper import sweep_command

storage_cli = AppGroup(
    "storage", help="Storage cost and lifecycle: metrics, lifecycle rules, tags, restores, the sweeper."
)


def plan_lines(plan: LifecyclePlan) -> list[str]:
    """The plan as the CLI prints it: a summary line, then each rule with its status and changes."""
    counts = ", ".join(
        f"{plan.count(status)} {status}" for status in ("added", "changed", "removed", UNCHANGED)
    )
    lines = [f"Lifecycle rules for {plan.target}: {len(plan.rules)} wanted; {counts}."]
    for diff in plan.diffs:
        lines.append(f"  {diff.status:<10} {diff.rule_id}")
        for change in diff.changes:
            lines.append(f"               {change.path}: {_json(change.before)} -> {_json(change.after)}")
        if diff.status != UNCHANGED:
            lines += [f"               {line}" for line in diff.json_diff]
    return lines


def _json(value) -> str:
    import json  # noqa: PLC0415

    return "(none)" if value is None else json.dumps(value, sort_keys=True)


def _plural(n: int) -> str:
    return "" if n == 1 else "s"


def checker_lines() -> list[str]:
    lines = ["Rule checker:"]
    clinics = db.session.execute(
        select(Tenant.id, Tenant.name).order_by(Tenant.id).execution_options(**ALL_TENANTS)
    ).all()
    for tenant_id, name in clinics:
        warnings = check_rules(tenant_id)
        lines.append(
            f"  {name} (clinic {tenant_id}): {len(warnings) or 'no'} warning{_plural(len(warnings))}"
        )
        for warning in warnings:
            lines.append(f"    - {warning.title}")
            lines.append(f"      {warning.detail}")
    return lines


@storage_cli.command("lifecycle")
@click.option("--apply", "apply_", is_flag=True, help="Write the rules to the bucket (and read them back).")
def lifecycle_command(apply_: bool) -> None:
    """Show the lifecycle rules the settings ask for against the bucket's; --apply writes them."""
    try:
        plan = bucket_plan()
    except LifecycleError as error:
        raise click.ClickException(error.message) from None
    click.echo("\n".join(plan_lines(plan)))
    click.echo("\n".join(checker_lines()))
    if not plan.pending:
        click.echo("The bucket already has what the settings ask for.")
        return
    if not apply_:
        click.echo("Run again with --apply to write these rules.")
        return
    try:
        applied = apply_bucket()
    except LifecycleError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Applied: {len(applied.rules)} rules written to {applied.target}, read back and matched.")


@storage_cli.command("tags")
@click.option(
    "--clinic", "tenant_id", type=int, default=None, help="One clinic's id (default: every clinic)."
)
@click.option("--verify", is_flag=True, help="Also read every object's tags and correct those that differ.")
def tags_command(tenant_id: int | None, verify: bool) -> None:
    """Re-evaluate the archive=allowed tags now (the daily storage.tags job does it on its own)."""
    from .tags import retag_clinic  # noqa: PLC0415

    clinics = db.session.scalars(select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS)).all()
    if tenant_id is not None:
        if tenant_id not in clinics:
            raise click.ClickException(f"No clinic has the id {tenant_id}.")
        clinics = [tenant_id]
    for clinic in clinics:
        counts = retag_clinic(clinic, verify=verify)
        click.echo(f"clinic {clinic}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))


storage_cli.add_command(sweep_command)
storage_cli.add_command(metrics_command)
