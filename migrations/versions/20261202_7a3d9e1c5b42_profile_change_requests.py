"""profile change requests: a patient asks for a new name, date of birth or sex; staff approve or reject;
one pending request per patient (a partial unique index)

Revision ID: 7a3d9e1c5b42
Revises: e2b9c47a1f38
Create Date: 2026-12-02 13:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "7a3d9e1c5b42"
down_revision = "e2b9c47a1f38"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "profile_change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["decided_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_profile_change_requests_pending",
        "profile_change_requests",
        ["patient_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_profile_change_requests_tenant_status",
        "profile_change_requests",
        ["tenant_id", "status", "created_at"],
    )
    op.create_index(op.f("ix_profile_change_requests_patient_id"), "profile_change_requests", ["patient_id"])
    op.create_index(op.f("ix_profile_change_requests_tenant_id"), "profile_change_requests", ["tenant_id"])


def downgrade():
    op.drop_index(op.f("ix_profile_change_requests_tenant_id"), table_name="profile_change_requests")
    op.drop_index(op.f("ix_profile_change_requests_patient_id"), table_name="profile_change_requests")
    op.drop_index("ix_profile_change_requests_tenant_status", table_name="profile_change_requests")
    op.drop_index("uq_profile_change_requests_pending", table_name="profile_change_requests")
    op.drop_table("profile_change_requests")
