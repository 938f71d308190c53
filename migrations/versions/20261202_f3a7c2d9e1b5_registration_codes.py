"""registration codes: a patient creates their portal account with a code from their clinic

Revision ID: f3a7c2d9e1b5
Revises: 7a3d9e1c5b42
Create Date: 2026-12-02 13:50:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "f3a7c2d9e1b5"
down_revision = "7a3d9e1c5b42"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "registration_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("verify_token_hash", sa.String(length=64), nullable=True),
        sa.Column("verify_email", sa.String(length=254), nullable=True),
        sa.Column("verify_expires_at", sa.DateTime(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
        sa.UniqueConstraint("verify_token_hash"),
    )
    with op.batch_alter_table("registration_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registration_codes_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_registration_codes_tenant_id"), ["tenant_id"], unique=False)


def downgrade():
    with op.batch_alter_table("registration_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registration_codes_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_registration_codes_patient_id"))
    op.drop_table("registration_codes")
