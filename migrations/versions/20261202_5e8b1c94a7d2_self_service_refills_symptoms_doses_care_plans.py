"""self-service: refill requests, symptom log, dose schedules and marks, care plan versions and acknowledgements

Revision ID: 5e8b1c94a7d2
Revises: 4e8b1d6a9c3f
Create Date: 2026-12-02 08:30:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "5e8b1c94a7d2"
down_revision = '4e8b1d6a9c3f'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN (nullable): no rebuild of a table others point at.
    op.add_column("prescriptions", sa.Column("schedule", sa.JSON(), nullable=True))

    op.create_table(
        "refill_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("prescription_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("patient_seen_at", sa.DateTime(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["decided_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["prescription_id"], ["prescriptions.id"]),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_refill_requests_open_per_prescription",
        "refill_requests",
        ["prescription_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_refill_requests_tenant_status_requested",
        "refill_requests",
        ["tenant_id", "status", "requested_at"],
    )
    op.create_index("ix_refill_requests_patient_requested", "refill_requests", ["patient_id", "requested_at"])
    op.create_index(op.f("ix_refill_requests_tenant_id"), "refill_requests", ["tenant_id"])

    op.create_table(
        "symptom_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("symptom", sa.String(length=40), nullable=False),
        sa.Column("other_name", sa.String(length=80), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_symptom_entries_patient_occurred", "symptom_entries", ["tenant_id", "patient_id", "occurred_at"]
    )
    op.create_index(op.f("ix_symptom_entries_tenant_id"), "symptom_entries", ["tenant_id"])

    op.create_table(
        "dose_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("prescription_id", sa.Integer(), nullable=False),
        sa.Column("dose_day", sa.Date(), nullable=False),
        sa.Column("slot", sa.String(length=5), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("marked_by_id", sa.Integer(), nullable=True),
        sa.Column("marked_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["marked_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["prescription_id"], ["prescriptions.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prescription_id", "dose_day", "slot", name="uq_dose_marks_dose"),
    )
    op.create_index("ix_dose_marks_patient_day", "dose_marks", ["tenant_id", "patient_id", "dose_day"])
    op.create_index(op.f("ix_dose_marks_tenant_id"), "dose_marks", ["tenant_id"])

    op.create_table(
        "care_plan_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("goals", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id", "number", name="uq_care_plan_versions_patient_number"),
    )
    op.create_index(op.f("ix_care_plan_versions_patient_id"), "care_plan_versions", ["patient_id"])
    op.create_index(op.f("ix_care_plan_versions_tenant_id"), "care_plan_versions", ["tenant_id"])

    op.create_table(
        "care_plan_acknowledgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["care_plan_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "user_id", name="uq_care_plan_acks_version_user"),
    )
    op.create_index(
        op.f("ix_care_plan_acknowledgements_tenant_id"), "care_plan_acknowledgements", ["tenant_id"]
    )
    op.create_index(
        op.f("ix_care_plan_acknowledgements_version_id"), "care_plan_acknowledgements", ["version_id"]
    )


def downgrade():
    op.drop_table("care_plan_acknowledgements")
    op.drop_table("care_plan_versions")
    op.drop_table("dose_marks")
    op.drop_table("symptom_entries")
    op.drop_table("refill_requests")
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): a batch rebuild would drop a table others point at.
        op.execute("ALTER TABLE prescriptions DROP COLUMN schedule")
    else:
        op.drop_column("prescriptions", "schedule")
