"""clinic counters: per-clinic sequences (the next MRN) taken with a guarded UPDATE … RETURNING

`next_mrn` counted the clinic's patients and added one: two patients added at once got the same MRN and
the second save failed on the unique constraint (a 500). A counter row per clinic and sequence is taken
with one UPDATE that locks it until commit. The MRN counter seeds itself from the patient count on first
use, so no data is copied here.

Revision ID: c7d2e9f4a1b3
Revises: b41c7e2a9d10
Create Date: 2026-12-01 22:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'c7d2e9f4a1b3'
down_revision = 'b41c7e2a9d10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'clinic_counters',
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['tenant_id'], ['tenants.id'], name=op.f('fk_clinic_counters_tenant_id_tenants')
        ),
        sa.PrimaryKeyConstraint('tenant_id', 'name', name=op.f('pk_clinic_counters')),
    )


def downgrade():
    op.drop_table('clinic_counters')
