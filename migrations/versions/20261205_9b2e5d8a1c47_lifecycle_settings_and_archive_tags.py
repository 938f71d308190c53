"""lifecycle settings (per clinic: days to GLACIER and DEEP_ARCHIVE, how long a file counts as recently
opened, on/off) and archive tags (the versions whose object carries archive=allowed, the lifecycle rule's
filter, as the app last wrote it)

Revision ID: 9b2e5d8a1c47
Revises: c5e8f1b4a7d0
Create Date: 2026-12-05 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "9b2e5d8a1c47"
down_revision = "c5e8f1b4a7d0"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "lifecycle_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("glacier_days", sa.Integer(), nullable=False),
        sa.Column("deep_archive_days", sa.Integer(), nullable=False),
        sa.Column("recent_days", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_lifecycle_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_settings")),
        sa.UniqueConstraint("tenant_id", name="uq_lifecycle_settings_tenant"),
    )
    with op.batch_alter_table("lifecycle_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lifecycle_settings_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "archive_tags",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("tagged_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["attachment_versions.id"],
            name=op.f("fk_archive_tags_version_id_attachment_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_archive_tags_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_archive_tags")),
    )
    with op.batch_alter_table("archive_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_archive_tags_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("archive_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_archive_tags_tenant_id"))
    op.drop_table("archive_tags")
    with op.batch_alter_table("lifecycle_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lifecycle_settings_tenant_id"))
    op.drop_table("lifecycle_settings")
