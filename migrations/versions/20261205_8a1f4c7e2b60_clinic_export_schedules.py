"""clinic export schedules: a clinic's export runs by itself weekly or monthly at an hour of its clock; the
next slot (UTC) is taken by a guarded UPDATE, so each slot starts one export

Revision ID: 8a1f4c7e2b60
Revises: 6d8b0f3c5e92
Create Date: 2026-12-05 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "8a1f4c7e2b60"
down_revision = "6d8b0f3c5e92"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "clinic_export_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("month_day", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_job_id", sa.String(length=36), nullable=True),
        sa.Column("failure_reported", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_clinic_export_schedules_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_export_schedules")),
        sa.UniqueConstraint("tenant_id", name="uq_clinic_export_schedules_tenant"),
    )
    with op.batch_alter_table("clinic_export_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinic_export_schedules_next_run_at"), ["next_run_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_clinic_export_schedules_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("clinic_export_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinic_export_schedules_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_clinic_export_schedules_next_run_at"))
    op.drop_table("clinic_export_schedules")
