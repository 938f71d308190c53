"""care response targets and care-stage rules: clinic hours per task kind, the rules that move a patient's
care stage on portal events, and the moves they made (the patient page's history)

Revision ID: 3e9a7c1d5b20
Revises: 5e8b1c94a7d2
Create Date: 2026-12-02 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3e9a7c1d5b20'
down_revision = '5e8b1c94a7d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'care_response_targets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('hours', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'kind', name='uq_care_response_targets_kind'),
    )
    op.create_index(op.f('ix_care_response_targets_tenant_id'), 'care_response_targets', ['tenant_id'])
    op.create_table(
        'care_stage_rules',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_kind', sa.String(length=60), nullable=False),
        sa.Column('from_stage', sa.String(length=20), nullable=False),
        sa.Column('to_stage', sa.String(length=20), nullable=False),
        sa.Column('first_time_only', sa.Boolean(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'event_kind', 'from_stage', name='uq_care_stage_rules_event_stage'),
    )
    op.create_index(op.f('ix_care_stage_rules_tenant_id'), 'care_stage_rules', ['tenant_id'])
    op.create_table(
        'care_stage_moves',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('from_stage', sa.String(length=20), nullable=False),
        sa.Column('to_stage', sa.String(length=20), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('moved_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['portal_events.id']),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id']),
        sa.ForeignKeyConstraint(['rule_id'], ['care_stage_rules.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_care_stage_moves_patient', 'care_stage_moves', ['tenant_id', 'patient_id', 'moved_at'])
    op.create_index(op.f('ix_care_stage_moves_tenant_id'), 'care_stage_moves', ['tenant_id'])


def downgrade():
    op.drop_table('care_stage_moves')
    op.drop_table('care_stage_rules')
    op.drop_table('care_response_targets')
