"""messages between patients and the care team: topics and the notice per clinic, threads, messages (never
changed once sent), read state per reader, the files attached to a message; messaging on or off per patient

Revision ID: 4e8b1d6a9c3f
Revises: c5d1e8a2f4b6
Create Date: 2026-12-02 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4e8b1d6a9c3f'
down_revision = 'c5d1e8a2f4b6'
branch_labels = None
depends_on = None


def upgrade():
    # NOT NULL with a default: a plain ADD COLUMN on SQLite and PostgreSQL alike, no table rebuild.
    op.add_column(
        'patients', sa.Column('messaging_enabled', sa.Boolean(), server_default=sa.true(), nullable=False)
    )

    op.create_table(
        'message_topics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('pool_roles', sa.JSON(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'name', name='uq_message_topics_name'),
    )
    op.create_index(op.f('ix_message_topics_tenant_id'), 'message_topics', ['tenant_id'])

    op.create_table(
        'message_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('emergency_notice', sa.String(length=500), nullable=False),
        sa.Column('reply_time', sa.String(length=500), nullable=False),
        sa.Column('show_hours', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', name='uq_message_settings_tenant'),
    )
    op.create_index(op.f('ix_message_settings_tenant_id'), 'message_settings', ['tenant_id'])

    op.create_table(
        'message_threads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('topic_id', sa.Integer(), nullable=True),
        sa.Column('assignee_id', sa.Integer(), nullable=True),
        sa.Column('pool_roles', sa.JSON(), nullable=True),
        sa.Column('pool_name', sa.String(length=80), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_message_at', sa.DateTime(), nullable=False),
        sa.Column('last_message_id', sa.Integer(), nullable=True),
        sa.Column('last_author_id', sa.Integer(), nullable=True),
        sa.Column('message_count', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['assignee_id'], ['users.id']),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id']),
        sa.ForeignKeyConstraint(['last_author_id'], ['users.id']),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.ForeignKeyConstraint(['topic_id'], ['message_topics.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_message_threads_inbox', 'message_threads', ['tenant_id', 'status', 'last_message_at', 'id']
    )
    op.create_index('ix_message_threads_patient', 'message_threads', ['patient_id', 'last_message_at'])
    op.create_index('ix_message_threads_assignee', 'message_threads', ['assignee_id', 'status'])
    op.create_index(op.f('ix_message_threads_tenant_id'), 'message_threads', ['tenant_id'])

    op.create_table(
        'messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('thread_id', sa.Integer(), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=False),
        sa.Column('from_patient', sa.Boolean(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['author_id'], ['users.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.ForeignKeyConstraint(['thread_id'], ['message_threads.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_messages_thread', 'messages', ['thread_id', 'id'])
    op.create_index(op.f('ix_messages_tenant_id'), 'messages', ['tenant_id'])

    op.create_table(
        'message_thread_reads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('thread_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('last_read_message_id', sa.Integer(), nullable=False),
        sa.Column('read_at', sa.DateTime(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.ForeignKeyConstraint(['thread_id'], ['message_threads.id']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('thread_id', 'user_id', name='uq_message_thread_reads_reader'),
    )
    op.create_index(op.f('ix_message_thread_reads_user_id'), 'message_thread_reads', ['user_id'])
    op.create_index(op.f('ix_message_thread_reads_tenant_id'), 'message_thread_reads', ['tenant_id'])

    op.create_table(
        'message_attachments',
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('attachment_id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['attachment_id'], ['attachments.id']),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('message_id', 'attachment_id'),
    )
    op.create_index(op.f('ix_message_attachments_attachment_id'), 'message_attachments', ['attachment_id'])
    op.create_index(op.f('ix_message_attachments_tenant_id'), 'message_attachments', ['tenant_id'])


def downgrade():
    op.drop_table('message_attachments')
    op.drop_table('message_thread_reads')
    op.drop_table('messages')
    op.drop_table('message_threads')
    op.drop_table('message_settings')
    op.drop_table('message_topics')
    # SQLite's own DROP COLUMN (3.35+): a batch rebuild of patients would break the keys pointing at it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE patients DROP COLUMN messaging_enabled")
    else:
        op.drop_column('patients', 'messaging_enabled')
