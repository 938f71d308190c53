"""record suggested diagnoses: a template's diagnoses stay suggestions until the clinician confirms them

Revision ID: a9c4e2f7b1d3
Revises: f4e1a7c3b9d2
Create Date: 2026-12-02 01:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a9c4e2f7b1d3'
down_revision = 'f4e1a7c3b9d2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('medical_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suggested_diagnoses', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('medical_records', schema=None) as batch_op:
        batch_op.drop_column('suggested_diagnoses')
