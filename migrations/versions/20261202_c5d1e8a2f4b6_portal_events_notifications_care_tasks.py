"""portal events, notifications and care tasks: the outbox every portal action writes to, the in-app
notifications, the staff tasks made from events; the clinic's phone, address and hours; email choices

Revision ID: c5d1e8a2f4b6
Revises: b7e3d5a1c8f2
Create Date: 2026-12-02 07:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c5d1e8a2f4b6'
down_revision = 'b7e3d5a1c8f2'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (nullable) on every database: no rebuild of tables others point at.
    op.add_column('tenants', sa.Column('phone', sa.String(length=40), nullable=True))
    op.add_column('tenants', sa.Column('address', sa.String(length=300), nullable=True))
    op.add_column('tenants', sa.Column('hours', sa.JSON(), nullable=True))
    op.add_column('users', sa.Column('notify_email_kinds', sa.JSON(), nullable=True))

    op.create_table(
        'portal_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=60), nullable=False),
        sa.Column('subject_type', sa.String(length=40), nullable=True),
        sa.Column('subject_id', sa.Integer(), nullable=True),
        sa.Column('actor_user_id', sa.Integer(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('handled_at', sa.DateTime(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['actor_user_id'], ['users.id']),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_portal_events_unhandled', 'portal_events', ['handled_at', 'created_at'])
    op.create_index(op.f('ix_portal_events_patient_id'), 'portal_events', ['patient_id'])
    op.create_index(op.f('ix_portal_events_tenant_id'), 'portal_events', ['tenant_id'])

    # The notifications table (sharing's notices so far) becomes every kind's.
    with op.batch_alter_table('notifications') as batch:
        batch.add_column(sa.Column('patient_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('event_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('kind', sa.String(length=40), server_default='share', nullable=False))
        batch.add_column(sa.Column('emailed_at', sa.DateTime(), nullable=True))
        batch.create_foreign_key('fk_notifications_patient_id', 'patients', ['patient_id'], ['id'])
        batch.create_foreign_key('fk_notifications_event_id', 'portal_events', ['event_id'], ['id'])
        batch.create_index('uq_notifications_event_user_kind', ['event_id', 'user_id', 'kind'], unique=True)

    op.create_table(
        'care_tasks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('subject_type', sa.String(length=40), nullable=True),
        sa.Column('subject_id', sa.Integer(), nullable=True),
        sa.Column('link', sa.String(length=500), nullable=True),
        sa.Column('assignee_id', sa.Integer(), nullable=True),
        sa.Column('pool_roles', sa.JSON(), nullable=True),
        sa.Column('pool_name', sa.String(length=80), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=True),
        sa.Column('paused_at', sa.DateTime(), nullable=True),
        sa.Column('remaining_minutes', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=True),
        sa.Column('completed_at', sa.DateTime(), nullable=True),
        sa.Column('completed_by_id', sa.Integer(), nullable=True),
        sa.Column('completion_note', sa.Text(), nullable=True),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['assignee_id'], ['users.id']),
        sa.ForeignKeyConstraint(['completed_by_id'], ['users.id']),
        sa.ForeignKeyConstraint(['event_id'], ['portal_events.id']),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'kind', name='uq_care_tasks_event_kind'),
    )
    op.create_index('ix_care_tasks_tenant_status_due', 'care_tasks', ['tenant_id', 'status', 'due_at'])
    op.create_index('ix_care_tasks_assignee_status', 'care_tasks', ['assignee_id', 'status'])
    op.create_index(op.f('ix_care_tasks_patient_id'), 'care_tasks', ['patient_id'])
    op.create_index(op.f('ix_care_tasks_tenant_id'), 'care_tasks', ['tenant_id'])


def downgrade():
    op.drop_table('care_tasks')
    with op.batch_alter_table('notifications') as batch:
        batch.drop_index('uq_notifications_event_user_kind')
        batch.drop_constraint('fk_notifications_event_id', type_='foreignkey')
        batch.drop_constraint('fk_notifications_patient_id', type_='foreignkey')
        for column in ('emailed_at', 'kind', 'event_id', 'patient_id'):
            batch.drop_column(column)
    op.drop_table('portal_events')
    for table, column in (('users', 'notify_email_kinds'), ('tenants', 'hours'), ('tenants', 'address'),
                          ('tenants', 'phone')):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            op.drop_column(table, column)
