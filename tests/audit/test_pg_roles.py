"""On PostgreSQL the app's role cannot change audit rows, nor switch the trigger off: it does not own them."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from healthcrm.dbroles import role_statements
from healthcrm.extensions import db

DATABASE_URL = os.environ.get("DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not DATABASE_URL.startswith("postgresql"), reason="needs PostgreSQL")


@pytest.fixture
def roles_database(app):
    """A throwaway database with the app's tables, and two throwaway roles (roles are cluster-wide)."""
    suffix = uuid.uuid4().hex[:8]
    name, owner, app_role = f"h_roles_{suffix}", f"hc_owner_{suffix}", f"hc_app_{suffix}"
    admin = create_engine(DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(DATABASE_URL).set(database=name)
    engine = create_engine(url)
    db.metadata.create_all(engine)  # with the append-only trigger (its after_create DDL)
    with engine.begin() as connection:
        for statement in role_statements(connection, owner, app_role, None):
            connection.execute(text(statement))
        connection.execute(
            text(
                "INSERT INTO audit_log (occurred_at, action, outcome, prev_hash, hash) "
                "VALUES (now(), 'test.event', 'success', 'p', 'h')"
            )
        )
    engine.dispose()
    try:
        yield url.set(username=app_role), url.set(username=owner)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            for role in (app_role, owner):
                connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
        "DROP TRIGGER audit_log_no_change ON audit_log",
        "DROP TABLE audit_log",
    ],
)
def test_the_app_role_cannot_change_audit_rows(roles_database, statement):
    app_url, _ = roles_database
    engine = create_engine(app_url)
    try:
        with engine.connect() as connection:
            with pytest.raises(DBAPIError) as refused:
                connection.execute(text(statement))
            assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value)
            connection.rollback()
            assert connection.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'test.event'")) == 1
    finally:
        engine.dispose()


def test_the_app_role_still_adds_audit_rows_and_writes_other_tables(roles_database):
    app_url, _ = roles_database
    engine = create_engine(app_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_log (occurred_at, action, outcome, prev_hash, hash) "
                    "VALUES (now(), 'test.second', 'success', 'h', 'h2')"
                )
            )
            heads = "INSERT INTO audit_chain_heads (chain_key, hash, events) VALUES (7, 'h2', 2)"
            connection.execute(text(heads))
            connection.execute(text("UPDATE audit_chain_heads SET events = 3"))
            connection.execute(text("DELETE FROM audit_chain_heads"))
            assert connection.scalar(text("SELECT count(*) FROM audit_log")) == 2
    finally:
        engine.dispose()


ARCHIVE_ROW = (
    "INSERT INTO audit_archives (tenant_id, month, starts_at, ends_at, key, sha256, size, events, "
    "archived_at) VALUES (5, :month, :starts, :ends, 'k', 's', 0, 1, now()) RETURNING id"
)


def test_the_app_role_releases_an_old_archived_month_only_through_the_owners_function(roles_database):
    app_url, _ = roles_database
    engine = create_engine(app_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_log (tenant_id, occurred_at, action, outcome, prev_hash, hash) VALUES "
                    "(5, '2023-01-10', 'old.event', 'success', 'p', 'h'), "
                    "(5, now(), 'recent.event', 'success', 'p', 'h')"
                )
            )
            old = connection.scalar(
                text(ARCHIVE_ROW), {"month": "2023-01", "starts": "2023-01-01", "ends": "2023-02-01"}
            )
            assert connection.scalar(text("SELECT audit_log_release_archived(:id)"), {"id": old}) == 1
        with engine.connect() as connection:
            recent = connection.scalar(
                text(ARCHIVE_ROW), {"month": "2099-01", "starts": "2000-01-01", "ends": "2100-01-01"}
            )
            with pytest.raises(DBAPIError, match="append-only"):
                connection.execute(text("SELECT audit_log_release_archived(:id)"), {"id": recent})
            connection.rollback()
            assert (
                connection.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'recent.event'")) == 1
            )
            assert connection.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'old.event'")) == 0
    finally:
        engine.dispose()
