"""patient documents: an attachment may belong to the patient with no record (record_id nullable), with
where it came from, whether the patient sees it, and one name per patient among them

Revision ID: e2b9c47a1f38
Revises: e8b4c1f6a2d9
Create Date: 2026-12-02 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2b9c47a1f38'
down_revision = 'e8b4c1f6a2d9'
branch_labels = None
depends_on = None

PATIENT_DOCUMENT = sa.text("record_id IS NULL")


def upgrade():
    # Plain ADD COLUMN on every database (a NOT NULL column with a constant default is fine on SQLite).
    op.add_column('attachments', sa.Column('source', sa.String(length=20), nullable=True))
    op.add_column(
        'attachments',
        sa.Column('visible_to_patient', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # NOT NULL -> NULL: an ALTER on PostgreSQL, a rebuild of the table on SQLite (batch mode). The rebuild
    # drops the old table, which other tables point at: with SQLite's foreign keys on, that only works
    # while no version, access row or upload points at an attachment. Turn them off for it when the
    # connection allows (outside a transaction the PRAGMA is honoured; inside one it is a no-op).
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.alter_column('record_id', existing_type=sa.Integer(), nullable=True)
    if sqlite:
        op.execute("PRAGMA foreign_keys=ON")
    op.create_index(
        'uq_attachments_patient_document_name',
        'attachments',
        ['patient_id', 'name_key'],
        unique=True,
        sqlite_where=PATIENT_DOCUMENT,
        postgresql_where=PATIENT_DOCUMENT,
    )


def downgrade():
    op.drop_index('uq_attachments_patient_document_name', table_name='attachments')
    # Patient documents cannot go back to NOT NULL record ids: they go, with their versions and access rows.
    op.execute(
        "DELETE FROM file_access_log WHERE attachment_id IN (SELECT id FROM attachments WHERE record_id IS NULL)"
    )
    op.execute(
        "UPDATE upload_sessions SET version_id = NULL WHERE version_id IN (SELECT v.id FROM attachment_versions v "
        "JOIN attachments a ON a.id = v.attachment_id WHERE a.record_id IS NULL)"
    )
    op.execute("UPDATE attachments SET current_version_id = NULL WHERE record_id IS NULL")
    op.execute(
        "DELETE FROM attachment_versions WHERE attachment_id IN (SELECT id FROM attachments WHERE record_id IS NULL)"
    )
    op.execute("DELETE FROM attachments WHERE record_id IS NULL")
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.alter_column('record_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('visible_to_patient')
        batch_op.drop_column('source')
    if sqlite:
        op.execute("PRAGMA foreign_keys=ON")
