"""attachments, their versions, upload sessions, the file access log; clinic storage quota

Revision ID: 7c2e5b1a9d44
Revises: 3f1c9a7d2b10
Create Date: 2026-11-23 05:15:00

"""
import sqlalchemy as sa
from alembic import op

revision = '7c2e5b1a9d44'
down_revision = '3f1c9a7d2b10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('name_key', sa.String(length=255), nullable=False),
    sa.Column('current_version_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_attachments_created_by_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_attachments_patient_id_patients')),
    sa.ForeignKeyConstraint(['record_id'], ['medical_records.id'], name=op.f('fk_attachments_record_id_medical_records')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_attachments_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('record_id', 'name_key', name='uq_attachments_record_name')
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachments_record_id'), ['record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachments_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('attachment_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('stored_size', sa.BigInteger(), nullable=False),
    sa.Column('compression', sa.String(length=10), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('stored_sha256', sa.String(length=64), nullable=False),
    sa.Column('stored_etag', sa.String(length=100), nullable=True),
    sa.Column('storage_class', sa.String(length=30), nullable=False),
    sa.Column('scan_status', sa.String(length=20), nullable=False),
    sa.Column('scan_signature', sa.String(length=200), nullable=True),
    sa.Column('scanned_at', sa.DateTime(), nullable=True),
    sa.Column('preview_status', sa.String(length=20), nullable=False),
    sa.Column('preview_key', sa.String(length=1024), nullable=True),
    sa.Column('image_key', sa.String(length=1024), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('restored_from_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachments.id'], name=op.f('fk_attachment_versions_attachment_id_attachments')),
    sa.ForeignKeyConstraint(['restored_from_id'], ['attachment_versions.id'], name=op.f('fk_attachment_versions_restored_from_id_attachment_versions')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_attachment_versions_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_attachment_versions_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachment_versions')),
    sa.UniqueConstraint('attachment_id', 'number', name='uq_attachment_versions_number')
    )
    with op.batch_alter_table('attachment_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachment_versions_attachment_id'), ['attachment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachment_versions_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_attachments_current_version', 'attachment_versions', ['current_version_id'], ['id'])

    op.create_table('upload_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('claimed_type', sa.String(length=100), nullable=True),
    sa.Column('fingerprint', sa.String(length=300), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=False),
    sa.Column('multipart_id', sa.String(length=255), nullable=True),
    sa.Column('part_size', sa.BigInteger(), nullable=True),
    sa.Column('replace_attachment_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['medical_records.id'], name=op.f('fk_upload_sessions_record_id_medical_records')),
    sa.ForeignKeyConstraint(['replace_attachment_id'], ['attachments.id'], name=op.f('fk_upload_sessions_replace_attachment_id_attachments')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_upload_sessions_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_upload_sessions_user_id_users')),
    sa.ForeignKeyConstraint(['version_id'], ['attachment_versions.id'], name=op.f('fk_upload_sessions_version_id_attachment_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upload_sessions')),
    sa.UniqueConstraint('public_id', name=op.f('uq_upload_sessions_public_id'))
    )
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_upload_sessions_record_status', ['record_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_sessions_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('file_access_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachments.id'], name=op.f('fk_file_access_log_attachment_id_attachments')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_file_access_log_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_file_access_log_user_id_users')),
    sa.ForeignKeyConstraint(['version_id'], ['attachment_versions.id'], name=op.f('fk_file_access_log_version_id_attachment_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file_access_log'))
    )
    with op.batch_alter_table('file_access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_access_log_attachment_id'), ['attachment_id'], unique=False)
        batch_op.create_index('ix_file_access_version_time', ['version_id', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_access_log_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_quota_bytes', sa.BigInteger(), nullable=True))


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN: a batch rebuild of `tenants` would fail while other tables point at it.
        op.execute("ALTER TABLE tenants DROP COLUMN storage_quota_bytes")
    else:
        op.drop_column('tenants', 'storage_quota_bytes')
    op.drop_table('file_access_log')
    op.drop_table('upload_sessions')
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_constraint('fk_attachments_current_version', type_='foreignkey')
    op.drop_table('attachment_versions')
    op.drop_table('attachments')
