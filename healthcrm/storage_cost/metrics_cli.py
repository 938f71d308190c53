"""`flask storage metrics`: record the storage metrics now (every clinic, or one), as the daily job does."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from ..accounts.models import Tenant
from ..extensions import db
from ..files.checks import human_size
from ..tenant_scope import all_tenants
from .metrics import record_clinic


@click.command("metrics")
@click.option("--clinic", "slug", default=None, help="Only this clinic (its slug).")
@with_appcontext
def metrics_command(slug: str | None) -> None:
    """Record today's storage figures per clinic and check the alert thresholds (idempotent)."""
    with all_tenants("the metrics command visits every clinic it is asked for"):
        query = select(Tenant).order_by(Tenant.id)
        if slug:
            query = query.where(Tenant.slug == slug)
        tenants = [(tenant.id, tenant.name) for tenant in db.session.scalars(query)]
    if slug and not tenants:
        raise click.ClickException(f"no clinic {slug!r}")
    for tenant_id, name in tenants:
        row = record_clinic(tenant_id)
        click.echo(
            f"{name}: {row.day.isoformat()}, {row.objects:,} objects, {human_size(row.bytes_stored)} stored "
            f"({human_size(row.bytes_original)} before compression), {row.puts} PUTs, "
            f"{row.views + row.downloads} GETs, {row.restores} restores"
        )
