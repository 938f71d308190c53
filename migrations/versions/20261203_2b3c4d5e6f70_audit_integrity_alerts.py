"""audit integrity alerts: what the nightly verification found, shown to admins until acknowledged

Revision ID: 2b3c4d5e6f70
Revises: 1a2b3c4d5e6f
Create Date: 2026-12-03 00:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "2b3c4d5e6f70"
down_revision = "1a2b3c4d5e6f"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_integrity_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("found_at", sa.DateTime(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("first_bad_event_id", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by_user_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_integrity_alerts")),
        sa.UniqueConstraint("tenant_id", "description", name="uq_audit_integrity_alerts_finding"),
    )
    with op.batch_alter_table("audit_integrity_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_integrity_alerts_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("audit_integrity_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_integrity_alerts_tenant_id"))
    op.drop_table("audit_integrity_alerts")
