"""file restores and storage sweeps: a row per request to retrieve an archived file version (one active
per version, kept by a unique partial index so two clicks start one restore), and the storage sweeper's
report of each run (counts by area, aborted uploads, orphan and missing objects)

Revision ID: a3c6f9e2d5b8
Revises: 9b2e5d8a1c47
Create Date: 2026-12-05 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "a3c6f9e2d5b8"
down_revision = "9b2e5d8a1c47"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "storage_sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("objects", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("open_uploads", sa.Integer(), nullable=False),
        sa.Column("aborted_uploads", sa.Integer(), nullable=False),
        sa.Column("orphans", sa.Integer(), nullable=False),
        sa.Column("orphan_bytes", sa.BigInteger(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("too_new", sa.Integer(), nullable=False),
        sa.Column("areas", sa.JSON(), nullable=False),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("digests", sa.JSON(), nullable=False),
        sa.Column("new_findings", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_storage_sweeps_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_sweeps")),
    )
    with op.batch_alter_table("storage_sweeps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storage_sweeps_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "file_restores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("attachment_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("share_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("expected_ready_at", sa.DateTime(), nullable=False),
        sa.Column("ready_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("emailed_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attachment_id"], ["attachments.id"], name=op.f("fk_file_restores_attachment_id_attachments")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_file_restores_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_file_restores_requested_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["share_id"], ["share_links.id"], name=op.f("fk_file_restores_share_id_share_links")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_file_restores_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["attachment_versions.id"],
            name=op.f("fk_file_restores_version_id_attachment_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_restores")),
    )
    with op.batch_alter_table("file_restores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_file_restores_attachment_id"), ["attachment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_file_restores_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index("ix_file_restores_status", ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_file_restores_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_file_restores_active_version",
            ["version_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('pending', 'ready')"),
            postgresql_where=sa.text("status IN ('pending', 'ready')"),
        )


def downgrade():
    with op.batch_alter_table("file_restores", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_file_restores_active_version",
            sqlite_where=sa.text("status IN ('pending', 'ready')"),
            postgresql_where=sa.text("status IN ('pending', 'ready')"),
        )
        batch_op.drop_index(batch_op.f("ix_file_restores_tenant_id"))
        batch_op.drop_index("ix_file_restores_status")
        batch_op.drop_index(batch_op.f("ix_file_restores_patient_id"))
        batch_op.drop_index(batch_op.f("ix_file_restores_attachment_id"))

    op.drop_table("file_restores")
    with op.batch_alter_table("storage_sweeps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_sweeps_tenant_id"))

    op.drop_table("storage_sweeps")
