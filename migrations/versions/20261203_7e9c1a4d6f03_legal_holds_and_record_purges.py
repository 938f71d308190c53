"""legal holds and record purges: a hold per patient that blocks any purge; what each purge removed
(counts only, no health data); the purged files still to delete from storage

Revision ID: 7e9c1a4d6f03
Revises: 5c7a9e2b4d81
Create Date: 2026-12-03 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "7e9c1a4d6f03"
down_revision = "5c7a9e2b4d81"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("placed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_by_user_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_legal_holds_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["placed_by_user_id"], ["users.id"], name=op.f("fk_legal_holds_placed_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["released_by_user_id"], ["users.id"], name=op.f("fk_legal_holds_released_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_legal_holds_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_holds_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_legal_holds_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_legal_holds_active",
            ["tenant_id", "patient_id"],
            unique=True,
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )
    op.create_table(
        "record_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("purged_at", sa.DateTime(), nullable=False),
        sa.Column("purged_by_user_id", sa.Integer(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("files_deleted_at", sa.DateTime(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_record_purges_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_purges")),
        sa.UniqueConstraint("tenant_id", "patient_id", name="uq_record_purges_patient"),
    )
    with op.batch_alter_table("record_purges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_purges_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "purged_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purge_id", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=1024), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["purge_id"], ["record_purges.id"], name=op.f("fk_purged_files_purge_id_record_purges")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_purged_files_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purged_files")),
    )
    with op.batch_alter_table("purged_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purged_files_purge_id"), ["purge_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purged_files_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("purged_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purged_files_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_purged_files_purge_id"))
    op.drop_table("purged_files")
    with op.batch_alter_table("record_purges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_purges_tenant_id"))
    op.drop_table("record_purges")
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.drop_index("uq_legal_holds_active")
        batch_op.drop_index(batch_op.f("ix_legal_holds_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_legal_holds_patient_id"))
    op.drop_table("legal_holds")
