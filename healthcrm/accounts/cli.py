"""`flask tenant create`: a new clinic with its first administrator (who is emailed an invitation)."""

from __future__ import annotations

import re

import click
from flask.cli import AppGroup

from . import services as accounts

tenant_cli = AppGroup("tenant", help="Clinics.")


@tenant_cli.command("create")
@click.argument("name")
@click.option("--admin-email", required=True, help="The first administrator's email; they get an invitation.")
@click.option("--admin-name", required=True, help="The first administrator's full name.")
@click.option("--slug", default=None, help="A short unique name (default: made from the clinic's name).")
@click.option(
    "--timezone", default="UTC", show_default=True, help="The clinic's time zone, e.g. America/Chicago."
)
def create_command(name: str, admin_email: str, admin_name: str, slug: str | None, timezone: str) -> None:
    """Create a clinic that requires two-step sign-in for its staff, and invite its first administrator."""
    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80]
    try:
        tenant, admin = accounts.create_clinic(name, slug, admin_email, admin_name, timezone=timezone)
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Created the clinic {tenant.name} ({tenant.slug}); staff must use two-step sign-in.")
    click.echo(f"An invitation to set a password went to {admin.email} (administrator).")
