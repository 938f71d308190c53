"""The append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped


class AuditEvent(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),
        Index("ix_audit_log_tenant_patient", "tenant_id", "patient_id"),
        Index("ix_audit_log_tenant_occurred_at", "tenant_id", "occurred_at"),
        Index("ix_audit_log_tenant_actor_id", "tenant_id", "actor_user_id", "id"),
        Index("ix_audit_log_tenant_resource", "tenant_id", "resource_type", "resource_id"),
        Index("ix_audit_log_tenant_request", "tenant_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # No foreign keys: the log must outlive anything it mentions.
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str | None] = mapped_column(String(20))
    actor_share_link_id: Mapped[int | None] = mapped_column(Integer)
    patient_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(60))
    resource_type: Mapped[str | None] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    changed_fields: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(db.Model):
    """The newest event of one chain (a clinic's, or the system chain as `chain_key` 0).

    Appending takes this row first, with an UPDATE: on PostgreSQL a row lock the next writer waits for, on
    SQLite the database's write lock (pysqlite opens the transaction at the first write), so the head read
    after it is the real head and two transactions can never extend the chain from the same event.
    """

    __tablename__ = "audit_chain_heads"

    chain_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    last_event_id: Mapped[int | None] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer, default=0)


# The database itself refuses to change history; the same statements run in the Alembic revisions. The one
# exception: a row of a month that has been archived (`AuditArchive`, its file written and checked) that
# ended at least 90 days ago may be deleted, which is how archiving moves rows out of the table. Recent rows
# can never be deleted, whatever is written in `audit_archives`.
ARCHIVED_ROW = (
    "EXISTS (SELECT 1 FROM audit_archives a WHERE a.tenant_id = OLD.tenant_id "
    "AND OLD.occurred_at >= a.starts_at AND OLD.occurred_at < a.ends_at AND a.ends_at <= {recent})"
)
SQLITE_RECENT = "datetime('now', '-90 days')"
POSTGRES_RECENT = "(now() AT TIME ZONE 'utc') - interval '90 days'"
APPEND_ONLY_DDL = {
    "sqlite": [
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        f"WHEN NOT {ARCHIVED_ROW.format(recent=SQLITE_RECENT)} "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        f"BEGIN IF TG_OP = 'DELETE' AND {ARCHIVED_ROW.format(recent=POSTGRES_RECENT)} THEN RETURN OLD; "
        "END IF; RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
        # The app's role may not DELETE from audit_log (`flask db-roles`): it releases an archived month's
        # rows through this function, which runs as the table's owner and deletes only what the trigger lets.
        "CREATE OR REPLACE FUNCTION audit_log_release_archived(archive_id integer) RETURNS integer "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$ "
        "DECLARE removed integer; BEGIN "
        "DELETE FROM audit_log l USING audit_archives a WHERE a.id = archive_id "
        "AND l.tenant_id = a.tenant_id AND l.occurred_at >= a.starts_at AND l.occurred_at < a.ends_at; "
        "GET DIAGNOSTICS removed = ROW_COUNT; RETURN removed; END $$",
    ],
}


# Legal floors the settings form enforces (HIPAA keeps audit documentation six years, 45 CFR 164.316(b)(2)).
AUDIT_YEARS_DEFAULT, AUDIT_YEARS_MIN = 7, 6
SHARE_LOG_YEARS_DEFAULT, SHARE_LOG_YEARS_MIN = 6, 6
HOT_MONTHS_DEFAULT, HOT_MONTHS_MIN = 13, 3
RECORD_ADULT_YEARS_DEFAULT, RECORD_ADULT_YEARS_MIN = 10, 6
RECORD_MINOR_UNTIL_AGE_DEFAULT, RECORD_MINOR_UNTIL_AGE_MIN = 28, 21


class RetentionSettings(TenantScoped, db.Model):
    """How long a clinic keeps its audit log, share access log and records; no row means the defaults.

    Records: an adult's are kept `record_adult_years` after the last visit; a minor's until the later of
    that and the day they turn `record_minor_until_age`.
    """

    __tablename__ = "retention_settings"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_retention_settings_tenant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_years: Mapped[int] = mapped_column(Integer, default=AUDIT_YEARS_DEFAULT)
    share_log_years: Mapped[int] = mapped_column(Integer, default=SHARE_LOG_YEARS_DEFAULT)
    hot_months: Mapped[int] = mapped_column(Integer, default=HOT_MONTHS_DEFAULT)
    record_adult_years: Mapped[int] = mapped_column(Integer, default=RECORD_ADULT_YEARS_DEFAULT)
    record_minor_until_age: Mapped[int] = mapped_column(Integer, default=RECORD_MINOR_UNTIL_AGE_DEFAULT)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_by_user_id: Mapped[int | None] = mapped_column(Integer)


class AuditIntegrityAlert(db.Model):
    """A finding of the nightly verification (a broken chain, a checkpoint the log disagrees with): shown to
    the clinic's admins until one acknowledges it, emailed once."""

    __tablename__ = "audit_integrity_alerts"
    __table_args__ = (UniqueConstraint("tenant_id", "description", name="uq_audit_integrity_alerts_finding"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Plain ids, like the log: the alert outlives what it mentions.
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    found_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    description: Mapped[str] = mapped_column(String(500))
    first_bad_event_id: Mapped[int | None] = mapped_column(Integer)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(Integer)


class AuditArchive(db.Model):
    """One month of a clinic's audit events, moved out of `audit_log` into a compressed file in storage.

    The file (`key`, gzip of one JSON object per event, in id order) is checked against `sha256` and its
    events re-hashed into the chain by `flask audit verify`. The row stays after the file is deleted past
    retention (`deleted_at`): the manifest keeps what existed. The month is the clinic's: `starts_at` and
    `ends_at` are its first and next month's first instant, in UTC like `occurred_at`.
    """

    __tablename__ = "audit_archives"
    __table_args__ = (UniqueConstraint("tenant_id", "month", name="uq_audit_archives_month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    month: Mapped[str] = mapped_column(String(7))  # 2025-10
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    first_event_id: Mapped[int | None] = mapped_column(Integer)
    last_event_id: Mapped[int | None] = mapped_column(Integer)
    last_hash: Mapped[str | None] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)  # S3 Object Lock, when the bucket has it
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)


class ArchivedEventCopy(db.Model):
    """An archived event loaded back for searching (the viewer, the CSV export): a disposable copy whose
    truth is the archive file. Copies are dropped a day after loading."""

    __tablename__ = "audit_archive_copies"
    __table_args__ = (Index("ix_audit_archive_copies_tenant_id_id", "tenant_id", "id"),)

    archive_id: Mapped[int] = mapped_column(
        ForeignKey("audit_archives.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    loaded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    request_id: Mapped[str | None] = mapped_column(String(64))
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str | None] = mapped_column(String(20))
    actor_share_link_id: Mapped[int | None] = mapped_column(Integer)
    patient_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(60))
    resource_type: Mapped[str | None] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))
    changed_fields: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# The triggers read audit_archives: made once every table exists.
for dialect, statements in APPEND_ONLY_DDL.items():
    for statement in statements:
        event.listen(db.Model.metadata, "after_create", DDL(statement).execute_if(dialect=dialect))
