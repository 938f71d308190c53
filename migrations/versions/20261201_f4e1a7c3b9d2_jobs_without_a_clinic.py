"""jobs without a clinic: a password reset request is queued before anyone knows whose address it is

Revision ID: f4e1a7c3b9d2
Revises: d3a8f1c6b2e7
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f4e1a7c3b9d2'
down_revision = 'd3a8f1c6b2e7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    # Rows without a clinic cannot satisfy NOT NULL again; they are reset emails, done or failed by now.
    op.execute("DELETE FROM jobs WHERE tenant_id IS NULL")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=False)
