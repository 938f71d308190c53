"""audit archives: a clinic's months of audit events moved out of audit_log into checksummed files (the
manifest rows), the copies loaded back for a search; audit_log rows of an archived month that ended 90 days
ago may be deleted (on PostgreSQL through a SECURITY DEFINER function, the app's role has no DELETE)

Revision ID: 6d8b0f3c5e92
Revises: 7e9c1a4d6f03
Create Date: 2026-12-04 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "6d8b0f3c5e92"
down_revision = "7e9c1a4d6f03"
branch_labels = None
depends_on = None

# As in healthcrm/audit/models.py (APPEND_ONLY_DDL), frozen here.
ARCHIVED_ROW = (
    "EXISTS (SELECT 1 FROM audit_archives a WHERE a.tenant_id = OLD.tenant_id "
    "AND OLD.occurred_at >= a.starts_at AND OLD.occurred_at < a.ends_at AND a.ends_at <= {recent})"
)
SQLITE = {
    "upgrade": [
        "DROP TRIGGER IF EXISTS audit_log_no_delete",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "WHEN NOT " + ARCHIVED_ROW.format(recent="datetime('now', '-90 days')") + " "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    "downgrade": [
        "DROP TRIGGER IF EXISTS audit_log_no_delete",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
}
POSTGRES = {
    "upgrade": [
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        "BEGIN IF TG_OP = 'DELETE' AND "
        + ARCHIVED_ROW.format(recent="(now() AT TIME ZONE 'utc') - interval '90 days'")
        + " THEN RETURN OLD; END IF; RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
        "CREATE OR REPLACE FUNCTION audit_log_release_archived(archive_id integer) RETURNS integer "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$ "
        "DECLARE removed integer; BEGIN "
        "DELETE FROM audit_log l USING audit_archives a WHERE a.id = archive_id "
        "AND l.tenant_id = a.tenant_id AND l.occurred_at >= a.starts_at AND l.occurred_at < a.ends_at; "
        "GET DIAGNOSTICS removed = ROW_COUNT; RETURN removed; END $$",
    ],
    "downgrade": [
        "DROP FUNCTION IF EXISTS audit_log_release_archived(integer)",
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
    ],
}


def _run(step: str) -> None:
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE, "postgresql": POSTGRES}.get(dialect, {}).get(step, []):
        op.execute(statement)


def upgrade():
    op.create_table(
        "audit_archives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("first_event_id", sa.Integer(), nullable=True),
        sa.Column("last_event_id", sa.Integer(), nullable=True),
        sa.Column("last_hash", sa.String(length=64), nullable=True),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "month", name="uq_audit_archives_month"),
    )
    op.create_table(
        "audit_archive_copies",
        sa.Column("archive_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("loaded_at", sa.DateTime(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=20), nullable=True),
        sa.Column("actor_share_link_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("changed_fields", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["archive_id"], ["audit_archives.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("archive_id", "id"),
    )
    op.create_index("ix_audit_archive_copies_tenant_id_id", "audit_archive_copies", ["tenant_id", "id"])
    _run("upgrade")


def downgrade():
    _run("downgrade")
    op.drop_index("ix_audit_archive_copies_tenant_id_id", table_name="audit_archive_copies")
    op.drop_table("audit_archive_copies")
    op.drop_table("audit_archives")
