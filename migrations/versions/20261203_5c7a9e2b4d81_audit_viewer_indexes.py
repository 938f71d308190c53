"""audit viewer indexes: by day, by user, by resource, by request

Revision ID: 5c7a9e2b4d81
Revises: 2b3c4d5e6f70
Create Date: 2026-12-03 00:00:00.000000

"""

from alembic import op

revision = "5c7a9e2b4d81"
down_revision = "2b3c4d5e6f70"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_audit_log_tenant_occurred_at": ["tenant_id", "occurred_at"],
    "ix_audit_log_tenant_actor_id": ["tenant_id", "actor_user_id", "id"],
    "ix_audit_log_tenant_resource": ["tenant_id", "resource_type", "resource_id"],
    "ix_audit_log_tenant_request": ["tenant_id", "request_id"],
}


def upgrade():
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_log", columns)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name="audit_log")
