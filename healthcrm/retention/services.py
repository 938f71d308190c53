"""Records past their retention: which patients are due, legal holds, and the purge an admin confirms.

Nothing is deleted on its own. The report lists the patients whose records are past the clinic's rule
(healthcrm/audit/models.py `RetentionSettings`); an admin chooses some, sees what would go and types PURGE;
then one job per patient checks again, when it runs, that the patient is still due and not on hold, and
removes every row of theirs (healthcrm/retention/purge.py) with one audit event and a `RecordPurge` row in
the same transaction. Their stored files are deleted after that commit, from a work list written in it
(`PurgedFile`): a failure then leaves unreachable bytes to retry, never a row pointing at a missing file
and never a purge without its trace. The audit log is not purged: it is append-only and holds no health
data (ids, actions, field names).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..accounts.models import ADMIN, Tenant, User
from ..audit.services import DENIED, Actor, record_event, retention_settings
from ..clock import add_years, clinic_today, to_clinic_time, utcnow
from ..errors import DomainError, NotFound
from ..extensions import db
from ..files.storage import get_storage
from ..jobs.queue import enqueue, task
from ..paging import PageWindow
from ..patients.models import Patient
from ..permissions import require
from ..records.models import MedicalRecord
from ..scheduling.models import CHECKED_IN, COMPLETED, Appointment
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .models import HOLD_REASON_MAX_CHARS, LegalHold, PurgedFile, RecordPurge
from .purge import delete_patient_rows, find_patient_rows, stored_keys

PURGE_JOB = "retention.purge"
CONFIRM_WORD = "PURGE"
ADULT_AGE = 18
REPORT_PER_PAGE = 50
PURGE_MAX_PATIENTS = 200  # per confirmation: the confirmation page counts every row of each
HELD, NOT_HELD = "held", "not_held"


class RetentionError(DomainError):
    """Input for a hold or a purge the admin can fix."""


# --- when a patient's records are due --------------------------------------------------------------------


def age_on(date_of_birth: date, day: date) -> int:
    return day.year - date_of_birth.year - ((day.month, day.day) < (date_of_birth.month, date_of_birth.day))


def due_date(
    date_of_birth: date, last_visit: date | None, created: date, adult_years: int, minor_until_age: int
) -> date:
    """The day the patient's records may be purged.

    An adult's: `adult_years` after the last visit. A minor's (under 18 at the last visit): the later of
    that and the day they turn `minor_until_age`. With no visit, the day the patient was added counts as
    the last visit.
    """
    reference = last_visit or created
    due = add_years(reference, adult_years)
    if age_on(date_of_birth, reference) < ADULT_AGE:
        due = max(due, add_years(date_of_birth, minor_until_age))
    return due


@dataclass(frozen=True)
class DuePatient:
    patient: Patient
    last_visit: date | None
    due_since: date
    hold: LegalHold | None
    today: date

    @property
    def age(self) -> int:
        return age_on(self.patient.date_of_birth, self.today)


def _last_visits(tenant_id: int, patient_ids: list[int] | None = None) -> dict[int, object]:
    """Per patient, the newest visit: a medical record's visit time, or an appointment that took place."""
    newest: dict[int, object] = {}
    records = (
        select(MedicalRecord.patient_id, func.max(MedicalRecord.visit_at))
        .where(MedicalRecord.tenant_id == tenant_id)
        .group_by(MedicalRecord.patient_id)
    )
    visits = (
        select(Appointment.patient_id, func.max(Appointment.starts_at))
        .where(Appointment.tenant_id == tenant_id, Appointment.status.in_((COMPLETED, CHECKED_IN)))
        .group_by(Appointment.patient_id)
    )
    if patient_ids is not None:
        records = records.where(MedicalRecord.patient_id.in_(patient_ids))
        visits = visits.where(Appointment.patient_id.in_(patient_ids))
    for query in (records, visits):
        for patient_id, moment in db.session.execute(query):
            if moment is not None and (patient_id not in newest or moment > newest[patient_id]):
                newest[patient_id] = moment
    return newest


def _zone(tenant_id: int) -> str | None:
    return db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))


def due_patients(tenant_id: int, *, patient_ids: list[int] | None = None) -> list[DuePatient]:
    """The clinic's patients whose records are past their retention today (the clinic's day), oldest due
    first, each with their active hold if any."""
    zone = _zone(tenant_id)
    today = clinic_today(zone)
    settings = retention_settings(tenant_id)
    query = scoped(Patient, tenant_id)
    if patient_ids is not None:
        query = query.where(Patient.id.in_(patient_ids))
    patients = list(db.session.scalars(query))
    visits = _last_visits(tenant_id, [p.id for p in patients] if patient_ids is not None else None)
    holds = {
        hold.patient_id: hold
        for hold in db.session.scalars(scoped(LegalHold, tenant_id).where(LegalHold.released_at.is_(None)))
    }
    due = []
    for patient in patients:
        moment = visits.get(patient.id)
        last_visit = to_clinic_time(moment, zone).date() if moment is not None else None
        created = to_clinic_time(patient.created_at, zone).date()
        since = due_date(
            patient.date_of_birth,
            last_visit,
            created,
            settings.record_adult_years,
            settings.record_minor_until_age,
        )
        if since <= today:
            due.append(DuePatient(patient, last_visit, since, holds.get(patient.id), today))
    due.sort(key=lambda d: (d.due_since, d.patient.id))
    return due


@dataclass
class DueReport(PageWindow):
    rows: list[DuePatient]
    total: int
    page: int
    per_page: int
    held: str


def due_report(actor: Actor, *, page: int = 1, held: str = "") -> DueReport:
    """One page of the report (audited: it names patients)."""
    require(actor, "audit.retention")
    held = held if held in (HELD, NOT_HELD) else ""
    rows = due_patients(actor.tenant_id)
    if held:
        rows = [row for row in rows if (row.hold is not None) == (held == HELD)]
    per_page = REPORT_PER_PAGE
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * per_page : page * per_page]
    record_event(
        actor, "retention.report_viewed", resource_type="retention_report", resource_id=f"page-{page}",
        changed_fields=[held] if held else None,
    )  # fmt: skip
    db.session.commit()
    return DueReport(rows=shown, total=len(rows), page=page, per_page=per_page, held=held)


# --- legal holds ------------------------------------------------------------------------------------------


def _lock_patient(tenant_id: int, patient_id: int) -> bool:
    """Take the patient's row for this transaction (a row lock on PostgreSQL, the write lock on SQLite):
    holds and purges of one patient happen one after the other. False when there is no such patient."""
    taken = (
        update(Patient)
        .where(Patient.id == patient_id, Patient.tenant_id == tenant_id)
        .values(updated_at=Patient.updated_at)
        .returning(Patient.id)
        .execution_options(synchronize_session=False)
    )
    return db.session.scalar(taken) is not None


def active_hold(tenant_id: int, patient_id: int) -> LegalHold | None:
    return db.session.scalar(
        scoped(LegalHold, tenant_id).where(
            LegalHold.patient_id == patient_id, LegalHold.released_at.is_(None)
        )
    )


def patient_for_hold(actor: Actor, patient_id: int) -> tuple[Patient, LegalHold | None]:
    """The patient (NotFound when not the clinic's) and their active hold, for the hold page (audited)."""
    require(actor, "audit.retention")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    record_event(
        actor, "retention.hold_viewed", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    return patient, active_hold(actor.tenant_id, patient.id)


def place_hold(actor: Actor, patient_id: int, reason: str) -> LegalHold:
    """Put the patient's records on legal hold. RetentionError (nothing saved) for a missing or too long
    reason, or when a hold is already active; NotFound for another clinic's patient."""
    require(actor, "audit.retention")
    reason = (reason or "").strip()
    if not reason:
        raise RetentionError("Say why the records are held (a case, a request from counsel).", "reason")
    if len(reason) > HOLD_REASON_MAX_CHARS:
        raise RetentionError(f"The reason may have at most {HOLD_REASON_MAX_CHARS} characters.", "reason")
    if not _lock_patient(actor.tenant_id, patient_id):
        db.session.rollback()
        raise NotFound(patient_id)
    if active_hold(actor.tenant_id, patient_id) is not None:
        db.session.rollback()
        raise RetentionError("These records are already on legal hold.", "reason")
    hold = LegalHold(
        tenant_id=actor.tenant_id, patient_id=patient_id, reason=reason, placed_by_user_id=actor.user_id
    )
    db.session.add(hold)
    try:
        db.session.flush()
    except IntegrityError:  # the partial unique index: one active hold per patient
        db.session.rollback()
        raise RetentionError("These records are already on legal hold.", "reason") from None
    record_event(
        actor, "retention.hold_placed", resource_type="legal_hold", resource_id=hold.id, patient_id=patient_id
    )
    db.session.commit()
    return hold


def release_hold(actor: Actor, patient_id: int) -> LegalHold:
    """Release the patient's active hold (guarded: of two releases one does it, the other is told)."""
    require(actor, "audit.retention")
    if get_scoped(Patient, patient_id, actor.tenant_id) is None:
        raise NotFound(patient_id)
    released = db.session.scalar(
        update(LegalHold)
        .where(
            LegalHold.tenant_id == actor.tenant_id,
            LegalHold.patient_id == patient_id,
            LegalHold.released_at.is_(None),
        )
        .values(released_at=utcnow(), released_by_user_id=actor.user_id)
        .returning(LegalHold.id)
        .execution_options(synchronize_session=False)
    )
    if released is None:
        db.session.rollback()
        raise RetentionError("These records are not on legal hold.", "hold")
    record_event(
        actor,
        "retention.hold_released",
        resource_type="legal_hold",
        resource_id=released,
        patient_id=patient_id,
    )
    db.session.commit()
    return db.session.scalar(scoped(LegalHold, actor.tenant_id).where(LegalHold.id == released))


# --- the purge ---------------------------------------------------------------------------------------------


@dataclass
class PurgePlan:
    patient_ids: list[int]
    rows: int
    files: int
    bytes: int
    skipped_held: int = 0


def _chosen_ids(raw: list[str]) -> list[int]:
    ids = sorted({int(value) for value in raw if str(value).strip().isdigit()})
    if not ids:
        raise RetentionError("Choose at least one patient.", "patient_ids")
    if len(ids) > PURGE_MAX_PATIENTS:
        raise RetentionError(f"Choose at most {PURGE_MAX_PATIENTS} patients at a time.", "patient_ids")
    return ids


def plan_purge(actor: Actor, raw_ids: list[str]) -> PurgePlan:
    """What a purge of the chosen patients would remove: only those due and not held count. RetentionError
    when none of them may be purged; ids of another clinic or not due are left out."""
    require(actor, "audit.retention")
    ids = _chosen_ids(raw_ids)
    due = due_patients(actor.tenant_id, patient_ids=ids)
    free = [row.patient.id for row in due if row.hold is None]
    if not free:
        raise RetentionError(
            "None of the chosen patients' records may be purged (not due, or on legal hold).", "patient_ids"
        )
    rows = files = size = 0
    for patient_id in free:
        found = find_patient_rows(actor.tenant_id, patient_id)
        rows += sum(found.counts().values())
        keys, stored = stored_keys(found, actor.tenant_id)
        files += len(keys)
        size += stored
    record_event(
        actor,
        "retention.purge_planned",
        resource_type="retention_report",
        changed_fields=[f"patients_{len(free)}"],
    )
    db.session.commit()
    return PurgePlan(free, rows, files, size, skipped_held=sum(1 for row in due if row.hold is not None))


def confirm_purge(actor: Actor, raw_ids: list[str], typed: str) -> list[str]:
    """Queue one purge job per chosen patient that is still due and not held, when `typed` is PURGE or
    the number of patients. RetentionError, nothing queued, otherwise. Returns the job ids."""
    require(actor, "audit.retention")
    ids = _chosen_ids(raw_ids)
    due = due_patients(actor.tenant_id, patient_ids=ids)
    free = [row.patient.id for row in due if row.hold is None]
    if not free:
        raise RetentionError(
            "None of the chosen patients' records may be purged (not due, or on legal hold).", "patient_ids"
        )
    if (typed or "").strip() not in (CONFIRM_WORD, str(len(free))):
        raise RetentionError(f"Type {CONFIRM_WORD} (or {len(free)}) to confirm.", "confirm")
    record_event(
        actor,
        "retention.purge_confirmed",
        resource_type="retention_report",
        changed_fields=[f"patients_{len(free)}"],
    )
    db.session.commit()
    return [
        enqueue(
            PURGE_JOB,
            patient_id,
            actor.user_id or 0,
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            label=f"Purge of patient #{patient_id}",
        )
        for patient_id in free
    ]


def _purger(tenant_id: int, user_id: int) -> Actor:
    user = (
        db.session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))
        if user_id
        else None
    )
    return Actor(tenant_id=tenant_id, user_id=user.id if user else None, role=user.role if user else ADMIN)


def purge_patient(tenant_id: int, patient_id: int, user_id: int) -> dict:
    """Purge one patient's records if, now, they are due and not held; idempotent (a second run, or two
    at once, purge once: the patient's row is taken first, and `RecordPurge` is unique per patient).

    Returns {"purged": bool, "reason": ..., "purge_id": ...}.
    """
    actor = _purger(tenant_id, user_id)
    if not _lock_patient(tenant_id, patient_id):
        db.session.rollback()
        done = db.session.scalar(scoped(RecordPurge, tenant_id).where(RecordPurge.patient_id == patient_id))
        if done is None:
            return {"purged": False, "reason": "no_such_patient"}
        delete_purged_files(done.id, tenant_id)
        return {"purged": True, "purge_id": done.id, "already": True}
    blocked = None
    if active_hold(tenant_id, patient_id) is not None:
        blocked = "legal_hold"
    elif not due_patients(tenant_id, patient_ids=[patient_id]):
        blocked = "not_due"
    if blocked:
        record_event(
            actor, "retention.purge", resource_type="patient", resource_id=patient_id, patient_id=patient_id,
            outcome=DENIED, changed_fields=[blocked],
        )  # fmt: skip
        db.session.commit()
        return {"purged": False, "reason": blocked}
    found = find_patient_rows(tenant_id, patient_id)
    keys, size = stored_keys(found, tenant_id)
    counts = found.counts()
    purge = RecordPurge(
        tenant_id=tenant_id,
        patient_id=patient_id,
        purged_by_user_id=actor.user_id,
        counts={"rows": counts, "files": len(keys), "bytes": size},
    )
    db.session.add(purge)
    db.session.flush()
    db.session.add_all(PurgedFile(tenant_id=tenant_id, purge_id=purge.id, storage_key=key) for key in keys)
    delete_patient_rows(tenant_id, found)
    record_event(
        actor, "retention.purge", resource_type="patient", resource_id=patient_id, patient_id=patient_id,
        changed_fields=list(counts),
    )  # fmt: skip
    db.session.commit()
    delete_purged_files(purge.id, tenant_id)
    return {"purged": True, "purge_id": purge.id, "rows": sum(counts.values()), "files": len(keys)}


def delete_purged_files(purge_id: int, tenant_id: int) -> int:
    """Delete a purge's files from storage, each work-list row after its object (a missing object is no
    error, so a retry after a crash just carries on); stamp the purge when none is left."""
    storage = get_storage(current_app)
    deleted = 0
    pending = list(db.session.scalars(scoped(PurgedFile, tenant_id).where(PurgedFile.purge_id == purge_id)))
    for row in pending:
        storage.delete(row.storage_key)
        db.session.execute(
            delete(PurgedFile).where(PurgedFile.id == row.id, PurgedFile.tenant_id == tenant_id)
        )
        db.session.commit()
        deleted += 1
    db.session.execute(
        update(RecordPurge)
        .where(
            RecordPurge.id == purge_id,
            RecordPurge.tenant_id == tenant_id,
            RecordPurge.files_deleted_at.is_(None),
        )
        .values(files_deleted_at=utcnow())
    )
    db.session.commit()
    return deleted


def finish_purged_files() -> int:
    """Periodic (daily): finish the file deletions of purges interrupted after their commit."""
    purges = db.session.execute(
        select(RecordPurge.id, RecordPurge.tenant_id)
        .where(RecordPurge.files_deleted_at.is_(None))
        .execution_options(**ALL_TENANTS)  # periodic, for every clinic
    ).all()
    return sum(delete_purged_files(purge_id, tenant_id) for purge_id, tenant_id in purges)


@task(PURGE_JOB)
def run_purge(patient_id: int, user_id: int, *, progress) -> dict:
    return purge_patient(progress.tenant_id, int(patient_id), int(user_id))
