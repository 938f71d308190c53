"""`flask db-roles`: on PostgreSQL, an owner role for migrations and an app role that cannot rewrite history.

The append-only trigger on audit_log stops an UPDATE or DELETE, but the table's owner can disable or drop
the trigger. So in production the app does not own the tables: migrations run as the owner
(`MIGRATION_DATABASE_URL`), the app connects as a role that may read and write every table except that it
may only SELECT and INSERT audit rows: no UPDATE, DELETE or TRUNCATE, and, not being the owner, no ALTER
TABLE … DISABLE TRIGGER or DROP TRIGGER either.

Run it once as a superuser (or the database's owner) after `flask db upgrade`, and again after a
migration that adds a table only if the owner role is not the one that ran it (default privileges cover
tables the owner creates).
"""

from __future__ import annotations

import re

import click
from flask.cli import with_appcontext
from sqlalchemy import text

from .extensions import db

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
APPEND_ONLY_TABLES = ("audit_log",)


def _name(value: str) -> str:
    if not NAME.match(value):
        raise click.BadParameter(f"{value!r} is not a plain role name (lowercase letters, digits, _)")
    return value


def role_statements(connection, owner: str, app_role: str, app_password: str | None) -> list[str]:
    """The SQL that sets the roles up on `connection`'s database; idempotent."""
    owner, app_role = _name(owner), _name(app_role)
    login = "LOGIN PASSWORD " + _literal(app_password) if app_password else "LOGIN"
    statements = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') "
        f"THEN CREATE ROLE {owner} LOGIN; END IF; END $$",
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{app_role}') "
        f"THEN CREATE ROLE {app_role} {login}; END IF; END $$",
        f"GRANT {owner} TO CURRENT_USER",
    ]
    tables = connection.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
    sequences = connection.scalars(
        text("SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'")
    ).all()
    statements += [f'ALTER TABLE public."{table}" OWNER TO {owner}' for table in tables]
    statements += [f'ALTER SEQUENCE public."{sequence}" OWNER TO {owner}' for sequence in sequences]
    statements += [
        f"ALTER FUNCTION audit_log_append_only() OWNER TO {owner}",
        # Runs as the owner: the app releases archived months' rows through it, and nothing else.
        f"ALTER FUNCTION audit_log_release_archived(integer) OWNER TO {owner}",
        "REVOKE ALL ON FUNCTION audit_log_release_archived(integer) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION audit_log_release_archived(integer) TO {app_role}",
        f"GRANT USAGE ON SCHEMA public TO {app_role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app_role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app_role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {app_role}",
    ]
    for table in APPEND_ONLY_TABLES:
        statements += [
            f"REVOKE ALL ON {table} FROM {app_role}",
            f"GRANT SELECT, INSERT ON {table} TO {app_role}",
        ]
    return statements


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@click.command("db-roles")
@click.option("--owner", default="healthcrm_owner", show_default=True, help="Owns the tables; migrations.")
@click.option("--app", "app_role", default="healthcrm_app", show_default=True, help="The app connects as it.")
@click.option("--app-password", envvar="HEALTHCRM_APP_DB_PASSWORD", default=None, help="For a new app role.")
@with_appcontext
def db_roles_command(owner: str, app_role: str, app_password: str | None) -> None:
    """Give the tables to OWNER and let APP use them, without changing audit rows (PostgreSQL)."""
    if db.engine.dialect.name != "postgresql":
        click.echo("db-roles is for PostgreSQL; SQLite has no roles (the append-only triggers still hold).")
        return
    with db.engine.begin() as connection:
        for statement in role_statements(connection, owner, app_role, app_password):
            connection.execute(text(statement))
    click.echo(
        f"Tables owned by {owner}; {app_role} may use them, but only read and add audit rows.\n"
        f"Run the app as {app_role} (DATABASE_URL) and migrations as {owner} (MIGRATION_DATABASE_URL)."
    )
