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
    # A plain ADD COLUMN on every database (a nullable column needs no table rebuild).
    op.add_column('medical_records', sa.Column('suggested_diagnoses', sa.JSON(), nullable=True))


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): a batch rebuild would drop a table the diagnoses point at.
        op.execute("ALTER TABLE medical_records DROP COLUMN suggested_diagnoses")
    else:
        op.drop_column('medical_records', 'suggested_diagnoses')
