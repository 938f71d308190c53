"""appointments: types, providers' hours and exceptions, clinic closures, appointments and holds (no two of
one provider may overlap: an exclusion constraint on PostgreSQL, triggers on SQLite), the waitlist and its
offers, and the ledger of notices sent once

Revision ID: afd93f6c0f21
Revises: f3a7c2d9e1b5
Create Date: 2026-12-02 17:19:15.661997

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "afd93f6c0f21"
down_revision = "f3a7c2d9e1b5"
branch_labels = None
depends_on = None

# The models' DDL as it stood when this revision was written (a landed revision never changes).
NO_OVERLAP_DDL = {
    "sqlite": [
        "CREATE TRIGGER appointments_no_overlap_insert BEFORE INSERT ON appointments WHEN NEW.status IN ('held', 'booked', 'checked_in') AND NEW.overbooked = 0 BEGIN SELECT RAISE(ABORT, 'appointment_overlap') WHERE EXISTS (SELECT 1 FROM appointments a WHERE a.tenant_id = NEW.tenant_id AND a.provider_id = NEW.provider_id AND a.id IS NOT NEW.id AND a.uid <> NEW.uid AND a.status IN ('held', 'booked', 'checked_in') AND a.overbooked = 0 AND a.blocked_from < NEW.blocked_until AND a.blocked_until > NEW.blocked_from AND a.blocked_from > datetime(NEW.blocked_from, '-1 day')); END",
        "CREATE TRIGGER appointments_no_overlap_update BEFORE UPDATE OF provider_id, blocked_from, blocked_until, status, overbooked, uid ON appointments WHEN NEW.status IN ('held', 'booked', 'checked_in') AND NEW.overbooked = 0 BEGIN SELECT RAISE(ABORT, 'appointment_overlap') WHERE EXISTS (SELECT 1 FROM appointments a WHERE a.tenant_id = NEW.tenant_id AND a.provider_id = NEW.provider_id AND a.id IS NOT NEW.id AND a.uid <> NEW.uid AND a.status IN ('held', 'booked', 'checked_in') AND a.overbooked = 0 AND a.blocked_from < NEW.blocked_until AND a.blocked_until > NEW.blocked_from AND a.blocked_from > datetime(NEW.blocked_from, '-1 day')); END",
    ],
    "postgresql": [
        'CREATE EXTENSION IF NOT EXISTS btree_gist',
        "ALTER TABLE appointments ADD CONSTRAINT appointments_no_overlap EXCLUDE USING gist (provider_id WITH =, uid WITH <>, tsrange(blocked_from, blocked_until) WITH &&) WHERE (status IN ('held', 'booked', 'checked_in') AND NOT overbooked)",
    ],
}


def upgrade():
    op.create_table(
        "appointment_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("video_link", sa.String(length=500), nullable=True),
        sa.Column("preparation", sa.Text(), nullable=True),
        sa.Column("buffer_before_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer(), nullable=False),
        sa.Column("patient_bookable", sa.Boolean(), nullable=False),
        sa.Column("min_notice_minutes", sa.Integer(), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("reschedule_cutoff_minutes", sa.Integer(), nullable=False),
        sa.Column("cancel_cutoff_minutes", sa.Integer(), nullable=False),
        sa.Column("task_pool_role", sa.String(length=20), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0 AND buffer_before_minutes <= 120 "
            "AND buffer_after_minutes <= 120",
            name=op.f("ck_appointment_types_buffers"),
        ),
        sa.CheckConstraint("duration_minutes > 0 AND duration_minutes <= 720", name=op.f("ck_appointment_types_duration")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_appointment_types_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_types")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_appointment_types_name"),
    )
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_types_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "clinic_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("first_day <= last_day", name=op.f("ck_clinic_closures_order")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_clinic_closures_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_closures")),
    )
    with op.batch_alter_table("clinic_closures", schema=None) as batch_op:
        batch_op.create_index("ix_clinic_closures_days", ["tenant_id", "first_day", "last_day"], unique=False)
        batch_op.create_index(batch_op.f("ix_clinic_closures_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "scheduling_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reminder_2h", sa.Boolean(), nullable=False),
        sa.Column("hold_minutes", sa.Integer(), nullable=False),
        sa.Column("offer_minutes", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_scheduling_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduling_settings")),
        sa.UniqueConstraint("tenant_id", name="uq_scheduling_settings_tenant"),
    )
    with op.batch_alter_table("scheduling_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scheduling_settings_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "availability_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("starts", sa.Time(), nullable=True),
        sa.Column("ends", sa.Time(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(starts IS NULL AND ends IS NULL AND kind = 'off') OR (starts IS NOT NULL AND ends IS NOT NULL AND starts < ends)",
            name=op.f("ck_availability_exceptions_times"),
        ),
        sa.CheckConstraint("kind IN ('off', 'extra')", name=op.f("ck_availability_exceptions_kind")),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["users.id"], name=op.f("fk_availability_exceptions_provider_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_availability_exceptions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_exceptions")),
    )
    with op.batch_alter_table("availability_exceptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_availability_exceptions_provider_day", ["tenant_id", "provider_id", "day"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_availability_exceptions_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "provider_weekly_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("starts", sa.Time(), nullable=False),
        sa.Column("ends", sa.Time(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("starts < ends", name=op.f("ck_provider_weekly_hours_order")),
        sa.CheckConstraint("weekday >= 0 AND weekday <= 6", name=op.f("ck_provider_weekly_hours_weekday")),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["users.id"], name=op.f("fk_provider_weekly_hours_provider_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_provider_weekly_hours_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_weekly_hours")),
    )
    with op.batch_alter_table("provider_weekly_hours", schema=None) as batch_op:
        batch_op.create_index(
            "ix_provider_weekly_hours_provider", ["tenant_id", "provider_id", "weekday"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_provider_weekly_hours_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=80), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_from", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(), nullable=True),
        sa.Column("hold_purpose", sa.String(length=20), nullable=True),
        sa.Column("reschedules_id", sa.Integer(), nullable=True),
        sa.Column("overbooked", sa.Boolean(), nullable=False),
        sa.Column("overbook_reason", sa.String(length=300), nullable=True),
        sa.Column("patient_note", sa.String(length=500), nullable=True),
        sa.Column("booked_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("checked_in_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_by_id", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status <> 'held' OR hold_expires_at IS NOT NULL", name=op.f("ck_appointments_hold_end")
        ),
        sa.CheckConstraint(
            "NOT overbooked OR overbook_reason IS NOT NULL", name=op.f("ck_appointments_overbook_reason")
        ),
        sa.CheckConstraint(
            "blocked_from <= starts_at AND blocked_until >= ends_at", name=op.f("ck_appointments_blocked")
        ),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_appointments_order")),
        sa.ForeignKeyConstraint(
            ["booked_by_id"], ["users.id"], name=op.f("fk_appointments_booked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_id"], ["users.id"], name=op.f("fk_appointments_cancelled_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_appointments_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["users.id"], name=op.f("fk_appointments_provider_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["medical_records.id"], name=op.f("fk_appointments_record_id_medical_records")
        ),
        sa.ForeignKeyConstraint(
            ["reschedules_id"], ["appointments.id"], name=op.f("fk_appointments_reschedules_id_appointments")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_appointments_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["appointment_types.id"], name=op.f("fk_appointments_type_id_appointment_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointments_patient_starts", ["tenant_id", "patient_id", "starts_at"], unique=False
        )
        batch_op.create_index(
            "ix_appointments_provider_blocked", ["tenant_id", "provider_id", "blocked_from"], unique=False
        )
        batch_op.create_index("ix_appointments_starts", ["tenant_id", "starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointments_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_appointments_uid", ["uid"], unique=False)

    op.create_table(
        "appointment_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_notices_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_appointment_notices_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_notices")),
        sa.UniqueConstraint("appointment_id", "kind", "sequence", name="uq_appointment_notices_once"),
    )
    with op.batch_alter_table("appointment_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_notices_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("earliest_day", sa.Date(), nullable=False),
        sa.Column("latest_day", sa.Date(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("earliest_day <= latest_day", name=op.f("ck_waitlist_entries_order")),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_entries_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_waitlist_entries_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["users.id"], name=op.f("fk_waitlist_entries_provider_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_waitlist_entries_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["appointment_types.id"], name=op.f("fk_waitlist_entries_type_id_appointment_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_waitlist_entries_queue", ["tenant_id", "type_id", "status", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_waitlist_entries_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_waitlist_entries_open",
            ["patient_id", "type_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('waiting', 'offered')"),
            postgresql_where=sa.text("status IN ('waiting', 'offered')"),
        )

    op.create_table(
        "waitlist_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("hold_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("offered_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["waitlist_entries.id"], name=op.f("fk_waitlist_offers_entry_id_waitlist_entries")
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["appointments.id"], name=op.f("fk_waitlist_offers_hold_id_appointments")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["users.id"], name=op.f("fk_waitlist_offers_provider_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_waitlist_offers_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["appointment_types.id"], name=op.f("fk_waitlist_offers_type_id_appointment_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
    )
    with op.batch_alter_table("waitlist_offers", schema=None) as batch_op:
        batch_op.create_index("ix_waitlist_offers_entry", ["tenant_id", "entry_id"], unique=False)
        batch_op.create_index("ix_waitlist_offers_open", ["status", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_waitlist_offers_tenant_id"), ["tenant_id"], unique=False)

    for statement in NO_OVERLAP_DDL.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade():
    with op.batch_alter_table("waitlist_offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_waitlist_offers_tenant_id"))
        batch_op.drop_index("ix_waitlist_offers_open")
        batch_op.drop_index("ix_waitlist_offers_entry")

    op.drop_table("waitlist_offers")
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_waitlist_entries_open",
            sqlite_where=sa.text("status IN ('waiting', 'offered')"),
            postgresql_where=sa.text("status IN ('waiting', 'offered')"),
        )
        batch_op.drop_index(batch_op.f("ix_waitlist_entries_tenant_id"))
        batch_op.drop_index("ix_waitlist_entries_queue")

    op.drop_table("waitlist_entries")
    with op.batch_alter_table("appointment_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_notices_tenant_id"))

    op.drop_table("appointment_notices")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_appointments_uid")
        batch_op.drop_index(batch_op.f("ix_appointments_tenant_id"))
        batch_op.drop_index("ix_appointments_starts")
        batch_op.drop_index("ix_appointments_provider_blocked")
        batch_op.drop_index("ix_appointments_patient_starts")

    op.drop_table("appointments")
    with op.batch_alter_table("provider_weekly_hours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_weekly_hours_tenant_id"))
        batch_op.drop_index("ix_provider_weekly_hours_provider")

    op.drop_table("provider_weekly_hours")
    with op.batch_alter_table("availability_exceptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_availability_exceptions_tenant_id"))
        batch_op.drop_index("ix_availability_exceptions_provider_day")

    op.drop_table("availability_exceptions")
    with op.batch_alter_table("scheduling_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduling_settings_tenant_id"))

    op.drop_table("scheduling_settings")
    with op.batch_alter_table("clinic_closures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinic_closures_tenant_id"))
        batch_op.drop_index("ix_clinic_closures_days")

    op.drop_table("clinic_closures")
    with op.batch_alter_table("appointment_types", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_types_tenant_id"))

    op.drop_table("appointment_types")
