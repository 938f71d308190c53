"""storage metrics: a daily row per clinic (objects and bytes by storage class and size bucket, the day's
requests and restores), the admins' alert thresholds per clinic and the alerts they raised

Revision ID: b4d7e0a3f6c9
Revises: a3c6f9e2d5b8
Create Date: 2026-12-05 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "b4d7e0a3f6c9"
down_revision = "a3c6f9e2d5b8"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "storage_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("objects", sa.BigInteger(), nullable=False),
        sa.Column("bytes_original", sa.BigInteger(), nullable=False),
        sa.Column("bytes_stored", sa.BigInteger(), nullable=False),
        sa.Column("breakdown", sa.JSON(), nullable=False),
        sa.Column("puts", sa.BigInteger(), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False),
        sa.Column("downloads", sa.BigInteger(), nullable=False),
        sa.Column("restores", sa.BigInteger(), nullable=False),
        sa.Column("retrieved_bytes", sa.BigInteger(), nullable=False),
        sa.Column("restores_by_class", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_storage_metrics_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_metrics")),
        sa.UniqueConstraint("tenant_id", "day", name="uq_storage_metrics_tenant_day"),
    )
    with op.batch_alter_table("storage_metrics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storage_metrics_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "storage_thresholds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("limit_value", sa.BigInteger(), nullable=True),
        sa.Column("above", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"], ["users.id"], name=op.f("fk_storage_thresholds_changed_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_storage_thresholds_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_thresholds")),
        sa.UniqueConstraint("tenant_id", "kind", name="uq_storage_thresholds_tenant_kind"),
    )
    with op.batch_alter_table("storage_thresholds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storage_thresholds_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "storage_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("threshold_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("limit_value", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("crossed_at", sa.DateTime(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("emailed_at", sa.DateTime(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["threshold_id"],
            ["storage_thresholds.id"],
            name=op.f("fk_storage_alerts_threshold_id_storage_thresholds"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_storage_alerts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_alerts")),
    )
    with op.batch_alter_table("storage_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_storage_alerts_tenant_id_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_storage_alerts_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("storage_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_alerts_tenant_id"))
        batch_op.drop_index("ix_storage_alerts_tenant_id_id")
    op.drop_table("storage_alerts")
    with op.batch_alter_table("storage_thresholds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_thresholds_tenant_id"))
    op.drop_table("storage_thresholds")
    with op.batch_alter_table("storage_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_metrics_tenant_id"))
    op.drop_table("storage_metrics")
