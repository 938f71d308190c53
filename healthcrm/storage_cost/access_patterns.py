"""Access patterns: how often the clinic's files are opened, per month, per patient and per file, from the
files' access log (every view and download). It names patients and files: every read is audited.

Months are the clinic's calendar months (their first local midnight in its zone), mapped by one CASE the
database evaluates, so the figures are the same on SQLite and PostgreSQL and on any server clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, case, func, select

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import clinic_day_start, clinic_today
from ..errors import NotFound
from ..extensions import db
from ..files.models import ACCESS_DOWNLOAD, ACCESS_VIEW, Attachment, FileAccess
from ..patients.models import Patient
from ..permissions import require
from ..tenancy import get_scoped

MONTHS = 12
TOP_LIMIT = 10
FILES_LIMIT = 50


@dataclass(frozen=True)
class MonthRow:
    month: date  # its first day
    views: int
    downloads: int


@dataclass(frozen=True)
class OpenedRow:
    label: str  # a patient's name, or a file's name
    detail: str  # the MRN, or the patient of the file
    patient_id: int
    attachment_id: int | None
    views: int
    downloads: int
    last_opened: datetime | None


@dataclass(frozen=True)
class AccessPatterns:
    months: list[MonthRow]
    since: date  # the first month's first day
    patient: Patient | None  # when the figures are of one patient's files
    top_patients: list[OpenedRow]
    files: list[OpenedRow]


def _month_starts(today: date, months: int) -> list[date]:
    starts = []
    year, month = today.year, today.month
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(starts))


def _counts():
    return (
        func.coalesce(func.sum(case((FileAccess.action == ACCESS_VIEW, 1), else_=0)), 0),
        func.coalesce(func.sum(case((FileAccess.action == ACCESS_DOWNLOAD, 1), else_=0)), 0),
    )


def patterns(actor: Actor, patient_id: int | None = None, months: int = MONTHS) -> AccessPatterns:
    """Views and downloads per month over the last `months` clinic months, the most opened patients and
    files; of one patient's files when `patient_id` is given (another clinic's: NotFound). Audited."""
    require(actor, "storage.view")
    tenant_id = actor.tenant_id
    patient = None
    if patient_id is not None:
        patient = get_scoped(Patient, patient_id, tenant_id)
        if patient is None:
            raise NotFound("patient")
    tenant = db.session.get(Tenant, tenant_id)
    zone = tenant.timezone if tenant else None
    starts = _month_starts(clinic_today(zone), months)
    bounds = [clinic_day_start(day, zone) for day in starts]
    since = bounds[0]
    in_clinic = [FileAccess.tenant_id == tenant_id, FileAccess.occurred_at >= since]
    joined = and_(Attachment.id == FileAccess.attachment_id, Attachment.tenant_id == tenant_id)
    if patient is not None:
        in_clinic.append(Attachment.patient_id == patient.id)

    month_of = case(
        *[(FileAccess.occurred_at >= bounds[i], i) for i in range(len(bounds) - 1, 0, -1)], else_=0
    ).label("month")
    per_month = {
        index: (int(views), int(downloads))
        for index, views, downloads in db.session.execute(
            select(month_of, *_counts()).select_from(FileAccess).join(Attachment, joined).where(*in_clinic)
            .group_by(month_of)
        )
    }  # fmt: skip
    month_rows = [MonthRow(day, *per_month.get(i, (0, 0))) for i, day in enumerate(starts)]

    views, downloads = _counts()
    total = (views + downloads).label("total")
    top_patients = []
    if patient is None:
        rows = db.session.execute(
            select(Attachment.patient_id, views, downloads, func.max(FileAccess.occurred_at), total)
            .select_from(FileAccess).join(Attachment, joined).where(*in_clinic)
            .group_by(Attachment.patient_id).order_by(total.desc(), Attachment.patient_id).limit(TOP_LIMIT)
        ).all()  # fmt: skip
        names = _patients(tenant_id, [row[0] for row in rows])
        top_patients = [
            OpenedRow(names[pid].full_name, names[pid].mrn, pid, None, int(v), int(d), last)
            for pid, v, d, last, _ in rows
            if pid in names
        ]
    limit = FILES_LIMIT if patient is not None else TOP_LIMIT
    rows = db.session.execute(
        select(Attachment.id, Attachment.filename, Attachment.patient_id, views, downloads,
               func.max(FileAccess.occurred_at), total)
        .select_from(FileAccess).join(Attachment, joined).where(*in_clinic)
        .group_by(Attachment.id, Attachment.filename, Attachment.patient_id)
        .order_by(total.desc(), Attachment.id).limit(limit)
    ).all()  # fmt: skip
    names = _patients(tenant_id, [row[2] for row in rows])
    files = [
        OpenedRow(name, f"{names[pid].full_name} ({names[pid].mrn})", pid, aid, int(v), int(d), last)
        for aid, name, pid, v, d, last, _ in rows
        if pid in names
    ]
    record_event(
        actor,
        "storage.access_patterns_viewed",
        resource_type="patient" if patient is not None else "storage_dashboard",
        resource_id=patient.id if patient is not None else tenant_id,
        patient_id=patient.id if patient is not None else None,
    )
    db.session.commit()
    return AccessPatterns(month_rows, starts[0], patient, top_patients, files)


def _patients(tenant_id: int, ids: list[int]) -> dict[int, Patient]:
    if not ids:
        return {}
    query = select(Patient).where(Patient.tenant_id == tenant_id, Patient.id.in_(ids))
    return {patient.id: patient for patient in db.session.scalars(query)}
