"""retention settings: how long each clinic keeps its audit log, share access log and records

Revision ID: 1a2b3c4d5e6f
Revises: afd93f6c0f21
Create Date: 2026-12-03 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "1a2b3c4d5e6f"
down_revision = "afd93f6c0f21"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "retention_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_years", sa.Integer(), nullable=False),
        sa.Column("share_log_years", sa.Integer(), nullable=False),
        sa.Column("hot_months", sa.Integer(), nullable=False),
        sa.Column("record_adult_years", sa.Integer(), nullable=False),
        sa.Column("record_minor_until_age", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_retention_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_settings")),
        sa.UniqueConstraint("tenant_id", name="uq_retention_settings_tenant"),
    )
    with op.batch_alter_table("retention_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retention_settings_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("retention_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_settings_tenant_id"))
    op.drop_table("retention_settings")
