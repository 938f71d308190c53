"""lab imports: one row per confirmed CSV import, unique by its preview's import id

Two confirms of one preview sent at once both passed the "already imported?" check, and the second was
caught only by re-reading audit events after its own was written. The unique key on (tenant_id,
import_id) now decides: the second insert finds the first's row and nothing is saved. Earlier imports
stay known by their audit events.

Revision ID: d3a8f1c6b2e7
Revises: c7d2e9f4a1b3
Create Date: 2026-12-01 23:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'd3a8f1c6b2e7'
down_revision = 'c7d2e9f4a1b3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'lab_imports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('import_id', sa.String(length=64), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('imported_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_lab_imports_imported_by_id_users')),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_lab_imports_patient_id_patients')),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_lab_imports_tenant_id_tenants')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_imports')),
        sa.UniqueConstraint('tenant_id', 'import_id', name=op.f('uq_lab_imports_tenant_id')),
    )
    with op.batch_alter_table('lab_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lab_imports_tenant_id'), ['tenant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('lab_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lab_imports_tenant_id'))
    op.drop_table('lab_imports')
