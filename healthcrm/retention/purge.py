"""Which rows and stored files are one patient's, found from the models' metadata (not a hand list that
goes stale), and their removal.

A row is the patient's when
- its table has a `patient_id` column and it names the patient, or
- one of its NOT NULL foreign keys points at a row of the patient (a notification of their portal account),
- or, in a table without `patient_id`, any of its foreign keys points at a row of the patient (an
  addendum of their record, a message of their thread, a session of their portal account, …),
followed through the foreign keys until nothing more is found. A nullable reference from a row that is not
the patient's (another patient's appointment rescheduled from theirs) is set to NULL instead.

Kept on purpose (`KEPT_TABLES`): the audit log (append-only; it holds no health data) and the purges'
own trace. Tables that hold clinic data but nothing of a patient are named in `CLINIC_ONLY_TABLES`, so a
new table that reaches patients by neither a `patient_id` nor a foreign key fails the coverage test
(tests/retention/test_purge.py) instead of being missed silently.

Job rows keep their arguments as JSON, out of the foreign keys' reach: `PATIENT_JOBS` names, per job
kind, which argument is an id of which table; the patient's job rows go with them, and the files they
made (an export's ZIP) with their rows. A job kind in neither list fails the same test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Table, and_, delete, or_, select, update

from ..extensions import db

# The audit log and its archive's loaded copies are kept (append-only; no health data in them).
KEPT_TABLES = frozenset({"audit_log", "audit_archive_copies", "record_purges", "purged_files"})
CLINIC_ONLY_TABLES = frozenset(
    {
        "audit_archives",
        "audit_integrity_alerts",
        "appointment_types",
        "availability_exceptions",
        "care_response_targets",
        "care_stage_rules",
        "clinic_closures",
        "clinic_export_schedules",
        "clinic_counters",
        "lifecycle_settings",
        "message_settings",
        "message_topics",
        "provider_weekly_hours",
        "record_template_versions",
        "record_templates",
        "retention_settings",
        "scheduling_settings",
        # storage cost: clinic-wide figures and limits; the sweeper's reports name stored keys, not patients
        # (a purge deletes the objects)
        "storage_alerts",
        "storage_metrics",
        "storage_sweeps",
        "storage_thresholds",
    }
)
# Job kind -> (table, position of the argument that is an id of that table's row).
PATIENT_JOBS: dict[str, tuple[str, int]] = {
    "patient_export.build": ("patients", 0),
    "accounts.email_invitation": ("users", 0),
    "accounts.email_registration": ("registration_codes", 0),
    "files.preview": ("attachment_versions", 0),
    "files.scan": ("attachment_versions", 0),
    "files.zip": ("medical_records", 1),
    "portal.email_notification": ("notifications", 0),
    "portal.handle_event": ("portal_events", 0),
    "scheduling.send_notice": ("appointments", 0),
    "scheduling.waitlist_offer_email": ("waitlist_offers", 0),
    "sharing.email_code": ("share_links", 0),
    "sharing.email_patient": ("share_links", 0),
    "sharing.email_share": ("share_links", 0),
    "sharing.export_pdf": ("share_links", 0),
    "storage.restore": ("file_restores", 0),
    "storage.restore_email": ("file_restores", 0),
}
# Job kinds whose arguments name no patient's row (the purge's own job names only the patient's number).
NOT_PATIENT_JOBS = frozenset(
    {
        "accounts.email_password_reset",
        "audit.export_csv",
        "audit.load_archives",
        "sharing.sweep",
        "storage.tags",
        "tenant_export.build",
        "retention.purge",
        "storage.classes",
        "storage.sweep",
        "storage.alert_email",
        "storage.record_metrics",
    }
)
IN_CHUNK = 500


def purge_tables() -> list[Table]:
    """The clinic tables a purge looks in, parents first (the models' foreign-key order)."""
    return [
        table
        for table in db.metadata.sorted_tables
        if "tenant_id" in table.c and table.name not in KEPT_TABLES | CLINIC_ONLY_TABLES
    ]


def _chunks(values: Iterable, size: int = IN_CHUNK) -> Iterable[list]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _pk(table: Table) -> list:
    return list(table.primary_key.columns)


@dataclass
class PatientRows:
    """The patient's rows: per table, primary key -> the row's values that other rows reference."""

    rows: dict[str, dict[tuple, dict]] = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)  # the job rows (id, result) of the patient

    def values(self, table: str, column: str) -> set:
        return {row[column] for row in self.rows.get(table, {}).values()}

    def counts(self) -> dict[str, int]:
        counts = {name: len(found) for name, found in self.rows.items() if found}
        if self.jobs:
            counts["jobs"] = counts.get("jobs", 0) + len(self.jobs)
        return dict(sorted(counts.items()))


def _referenced_columns() -> dict[str, set[str]]:
    """Per table, the columns some foreign key points at (besides the primary key)."""
    referenced: dict[str, set[str]] = {}
    for table in db.metadata.sorted_tables:
        for fk in table.foreign_keys:
            referenced.setdefault(fk.column.table.name, set()).add(fk.column.name)
    return referenced


def _belongs_conditions(table: Table, patient_id: int, found: PatientRows) -> list:
    """The criteria that make a row of `table` the patient's, given the rows found so far."""
    has_patient_column = "patient_id" in table.c
    conditions = []
    if has_patient_column:
        conditions.append([table.c.patient_id == patient_id])
    for fk in table.foreign_keys:
        column = fk.parent
        if column.name in ("tenant_id", "patient_id"):
            continue
        if has_patient_column and column.nullable:
            continue  # another patient's row pointing at one of ours: unlinked, not removed
        targets = found.values(fk.column.table.name, fk.column.name)
        for chunk in _chunks(sorted(targets, key=str)):
            conditions.append([column.in_(chunk)])
    return conditions


def find_patient_rows(tenant_id: int, patient_id: int) -> PatientRows:
    """Every row of the patient in every purge table, and the patient's job rows."""
    from ..jobs.models import Job  # noqa: PLC0415 - jobs are looked at by kind, below

    referenced = _referenced_columns()
    found = PatientRows()
    patients = db.metadata.tables["patients"]
    tables = purge_tables()
    grew = True
    while grew:  # cycles (a version restored from another, a record's current version) need a second pass
        grew = False
        for table in tables:
            keep = [*_pk(table), *(table.c[name] for name in referenced.get(table.name, ()))]
            if table is patients:
                conditions = [[patients.c.id == patient_id]]
            else:
                conditions = _belongs_conditions(table, patient_id, found)
            rows = found.rows.setdefault(table.name, {})
            for condition in conditions:
                query = select(*dict.fromkeys(keep)).where(table.c.tenant_id == tenant_id, *condition)
                for row in db.session.execute(query).mappings():
                    key = tuple(row[column.name] for column in _pk(table))
                    if key not in rows:
                        rows[key] = dict(row)
                        grew = True
    jobs_table = Job.__table__
    job_query = select(jobs_table.c.id, jobs_table.c.kind, jobs_table.c.args, jobs_table.c.result).where(
        jobs_table.c.tenant_id == tenant_id, jobs_table.c.kind.in_(list(PATIENT_JOBS))
    )
    already = {key[0] for key in found.rows.get("jobs", {})}
    for job in db.session.execute(job_query).mappings():
        table_name, position = PATIENT_JOBS[job["kind"]]
        args = job["args"] or []
        ids = {str(value) for value in found.values(table_name, "id")}
        if len(args) > position and str(args[position]) in ids and job["id"] not in already:
            found.jobs.append(dict(job))
    return found


def stored_keys(found: PatientRows, tenant_id: int) -> tuple[list[str], int]:
    """The storage keys of the patient's files (every attachment version with its preview and image, open
    uploads, files their jobs made) and the bytes the clinic's quota counts for them."""
    tables = db.metadata.tables
    keys: list[str] = []
    size = 0
    versions = tables["attachment_versions"]
    version_ids = [key[0] for key in found.rows.get("attachment_versions", {})]
    for chunk in _chunks(version_ids):
        query = select(
            versions.c.storage_key, versions.c.preview_key, versions.c.image_key, versions.c.stored_size
        )
        for row in db.session.execute(
            query.where(versions.c.tenant_id == tenant_id, versions.c.id.in_(chunk))
        ):
            keys += [key for key in row[:3] if key]
            size += int(row[3] or 0)
    uploads = tables["upload_sessions"]
    upload_ids = [key[0] for key in found.rows.get("upload_sessions", {})]
    for chunk in _chunks(upload_ids):
        query = select(uploads.c.storage_key).where(uploads.c.tenant_id == tenant_id, uploads.c.id.in_(chunk))
        keys += [key for key in db.session.scalars(query) if key]
    jobs_table = tables["jobs"]
    job_ids = [job["id"] for job in found.jobs] + [key[0] for key in found.rows.get("jobs", {})]
    for chunk in _chunks(job_ids):
        query = select(jobs_table.c.result).where(
            jobs_table.c.tenant_id == tenant_id, jobs_table.c.id.in_(chunk)
        )
        for result in db.session.scalars(query):
            if isinstance(result, dict) and result.get("key") and not result.get("deleted"):
                keys.append(result["key"])
    return sorted(set(keys)), size


def delete_patient_rows(tenant_id: int, found: PatientRows) -> None:
    """Delete the rows found, in this transaction: first every nullable reference to them is set to NULL
    (from their own rows, which breaks the cycles, and from anyone else's), then children before parents."""
    from ..jobs.models import Job  # noqa: PLC0415

    tables = purge_tables()
    for table in tables:
        for fk in table.foreign_keys:
            column = fk.parent
            if not column.nullable or column.name == "tenant_id":
                continue
            targets = found.values(fk.column.table.name, fk.column.name)
            for chunk in _chunks(sorted(targets, key=str)):
                db.session.execute(
                    update(table)
                    .where(table.c.tenant_id == tenant_id, column.in_(chunk))
                    .values({column.name: None})
                    .execution_options(synchronize_session=False)
                )
    for table in reversed(tables):
        keys = list(found.rows.get(table.name, {}))
        primary = _pk(table)
        for chunk in _chunks(keys):
            if len(primary) == 1:
                criterion = primary[0].in_([key[0] for key in chunk])
            else:
                criterion = or_(
                    *(and_(*(c == v for c, v in zip(primary, key, strict=True))) for key in chunk)
                )
            db.session.execute(
                delete(table)
                .where(table.c.tenant_id == tenant_id, criterion)
                .execution_options(synchronize_session=False)
            )
    job_ids = [job["id"] for job in found.jobs]
    for chunk in _chunks(job_ids):
        db.session.execute(
            delete(Job.__table__)
            .where(Job.__table__.c.tenant_id == tenant_id, Job.__table__.c.id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
