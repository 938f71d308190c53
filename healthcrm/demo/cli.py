"""`flask demo`: seed the two demo clinics and print how to sign in."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..accounts.models import ROLE_LABELS
from .data import DEMO_URL, DemoError, DemoLogin, DemoResult, seed_demo


@click.command("demo")
@click.option(
    "--password",
    envvar="DEMO_PASSWORD",
    default=None,
    help="Set this password for every demo user (also on an already seeded database). "
    "Without it, a random one is generated and printed when demo users are first created. "
    "Can also come from DEMO_PASSWORD, which keeps it out of the shell history.",
)
@with_appcontext
def demo_command(password: str | None) -> None:
    """Create the demo clinics Riverside Family Clinic and Lakeside Hepatology (idempotent)."""
    try:
        result = seed_demo(password)
    except DemoError as error:
        raise click.ClickException(str(error)) from error
    _print_result(result, password_given=password is not None)


def _print_result(result: DemoResult, *, password_given: bool) -> None:
    if result.created_clinics:
        click.echo(f"Created the demo clinics: {', '.join(result.created_clinics)}.")
    else:
        click.echo("The demo clinics already exist; nothing was added.")
    click.echo("")
    _print_logins(result.logins)
    click.echo("")
    if result.password is None:
        click.echo("Passwords are unchanged; `flask demo --password …` sets a new one for every demo user.")
    elif password_given:
        # Do not echo a password the operator chose: it may end up in a log or a shared terminal.
        changed = "is now" if result.passwords_changed else "was already"
        click.echo(f"The password you gave {changed} the password of every demo user.")
    else:
        click.echo(f"Password for every demo user: {result.password}")
    click.echo(f"Open {DEMO_URL} and sign in with any email above.")
    if result.registration_codes:
        click.echo("")
        click.echo(f"To try registering, open {DEMO_URL}/register with one of these (any email of yours):")
        for code in result.registration_codes:
            click.echo(f"  {code.clinic}: code {code.code}, {code.patient}, born {code.date_of_birth}")


def _print_logins(logins: list[DemoLogin]) -> None:
    rows = [("Clinic", "Role", "Email")]
    rows += [(login.clinic, ROLE_LABELS.get(login.role, login.role), login.email) for login in logins]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
