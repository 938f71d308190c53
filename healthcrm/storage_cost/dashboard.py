"""The figures of the storage dashboard and of its JSON API, computed in one place so both say the same.

Usage, cost and trend come from the metrics rows (metrics.py) and the price table (prices.py, costs.py);
largest patients and records, files by age and cold files from aggregate queries of the clinic's versions.
Reading the page lists patients by name, so `overview` audits it (`storage.dashboard_viewed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from flask import current_app
from sqlalchemy import and_, case, exists, func, select

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import clinic_today, utcnow
from ..extensions import db
from ..files.models import Attachment, AttachmentVersion, FileAccess
from ..patients.models import Patient
from ..permissions import require
from ..records.models import MedicalRecord
from . import alerts, checker, metrics
from .costs import (
    FORECAST_DAYS,
    MONTH_DAYS,
    CostEstimate,
    Forecast,
    MoveSaving,
    daily_costs,
    forecast,
    month_cost,
    move_saving,
    usage_of,
)
from .metrics import BUCKET_KEYS, BUCKET_LABELS
from .models import StorageMetric
from .prices import PriceTable, load_prices

TREND_DAYS = (30, 90, 365)
LARGEST_LIMIT = 10
COLD_AFTER_DAYS = (30, 90, 365)
MOVE_TARGETS = ("GLACIER", "DEEP_ARCHIVE")
# Files by age: (label, from days, to days or None).
AGE_BUCKETS = (
    ("under 30 days", 0, 30),
    ("30 – 90 days", 30, 90),
    ("90 – 180 days", 90, 180),
    ("180 days – 1 year", 180, 365),
    ("1 – 2 years", 365, 730),
    ("over 2 years", 730, None),
)
CLASS_LABELS = {
    "STANDARD": "Standard",
    "INTELLIGENT_TIERING": "Intelligent-Tiering",
    "STANDARD_IA": "Standard-IA",
    "ONEZONE_IA": "One Zone-IA",
    "GLACIER_IR": "Glacier Instant Retrieval",
    "GLACIER": "Glacier Flexible Retrieval",
    "DEEP_ARCHIVE": "Glacier Deep Archive",
}


class BadParameter(ValueError):
    """A query parameter the API or the page cannot take (400)."""


def trend_days(raw: str | None, *, default: int = 30) -> int:
    """The trend's span from `?days=`: 30, 90 or 365."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) not in TREND_DAYS:
        raise BadParameter("days must be one of 30, 90 or 365")
    return int(raw)


@dataclass(frozen=True)
class ClassRow:
    storage_class: str
    label: str
    objects: int
    bytes_stored: int
    cost: Fraction  # a month


@dataclass(frozen=True)
class SizeRow:
    key: str
    label: str
    objects: int
    bytes_stored: int


@dataclass(frozen=True)
class Current:
    """The clinic's newest metrics row, what it costs a month, and its breakdowns."""

    row: StorageMetric | None
    estimate: CostEstimate | None
    classes: list[ClassRow]
    sizes: list[SizeRow]
    month_requests: dict[str, Fraction]  # puts, gets, restores (a month's, scaled from the days recorded)


def current(tenant_id: int, prices: PriceTable) -> Current:
    row = metrics.latest(tenant_id)
    if row is None:
        return Current(None, None, [], [], {})
    month = metrics.series(tenant_id, row.day, MONTH_DAYS)
    usage = usage_of(row, month)
    estimate = month_cost(usage, prices)
    costs = {c.storage_class: c.total for c in estimate.classes}
    classes = [
        ClassRow(name, CLASS_LABELS.get(name, name), sum(v[0] for v in buckets.values()),
                 sum(v[1] for v in buckets.values()), costs.get(name, Fraction(0)))
        for name, buckets in sorted((row.breakdown or {}).items())
    ]  # fmt: skip
    sizes = []
    for key in BUCKET_KEYS:
        cells = [buckets.get(key, [0, 0, 0]) for buckets in (row.breakdown or {}).values()]
        sizes.append(SizeRow(key, BUCKET_LABELS[key], sum(c[0] for c in cells), sum(c[1] for c in cells)))
    restores = sum((Fraction(v[0]) for v in usage.restores_by_class.values()), Fraction(0))
    return Current(
        row, estimate, classes, sizes, {"puts": usage.puts, "gets": usage.gets, "restores": restores}
    )


@dataclass(frozen=True)
class TrendPoint:
    day: date
    bytes_stored: int
    bytes_original: int
    month_cost: Fraction
    by_class: dict[str, int]  # bytes stored per class


def trend(tenant_id: int, last_day: date, days: int, prices: PriceTable) -> list[TrendPoint]:
    """The `days` days up to `last_day` that have figures, oldest first; each day's month cost counts the
    requests of the 30 days up to it."""
    rows = metrics.series(tenant_id, last_day, days + MONTH_DAYS - 1)
    costs = dict(daily_costs(rows, prices))
    first = last_day - timedelta(days=days - 1)
    return [
        TrendPoint(
            day=row.day,
            bytes_stored=row.bytes_stored,
            bytes_original=row.bytes_original,
            month_cost=costs[row.day],
            by_class={
                name: sum(v[1] for v in buckets.values()) for name, buckets in (row.breakdown or {}).items()
            },
        )
        for row in rows
        if row.day >= first
    ]


def cost_forecast(points: Sequence[TrendPoint]) -> Forecast | None:
    """The 3-month forecast: least squares over the last 90 days of the series."""
    return forecast([(p.day, p.month_cost) for p in points], [(p.day, p.bytes_stored) for p in points])


@dataclass(frozen=True)
class Largest:
    label: str  # the patient's name, or the record's visit
    detail: str  # MRN, or the record's patient
    patient_id: int
    record_id: int | None
    objects: int
    bytes_stored: int


def largest_patients(tenant_id: int, limit: int = LARGEST_LIMIT) -> list[Largest]:
    stored = func.sum(AttachmentVersion.stored_size).label("stored")
    rows = db.session.execute(
        select(Attachment.patient_id, func.count(), stored)
        .select_from(AttachmentVersion)
        .join(
            Attachment,
            and_(Attachment.id == AttachmentVersion.attachment_id, Attachment.tenant_id == tenant_id),
        )
        .where(AttachmentVersion.tenant_id == tenant_id)
        .group_by(Attachment.patient_id)
        .order_by(stored.desc(), Attachment.patient_id)
        .limit(limit)
    ).all()
    patients = _patients(tenant_id, [row[0] for row in rows])
    return [
        Largest(patients[pid].full_name, patients[pid].mrn, pid, None, int(count), int(size))
        for pid, count, size in rows
        if pid in patients
    ]


def largest_records(tenant_id: int, limit: int = LARGEST_LIMIT) -> list[Largest]:
    stored = func.sum(AttachmentVersion.stored_size).label("stored")
    rows = db.session.execute(
        select(Attachment.record_id, Attachment.patient_id, func.count(), stored)
        .select_from(AttachmentVersion)
        .join(
            Attachment,
            and_(Attachment.id == AttachmentVersion.attachment_id, Attachment.tenant_id == tenant_id),
        )
        .where(AttachmentVersion.tenant_id == tenant_id, Attachment.record_id.is_not(None))
        .group_by(Attachment.record_id, Attachment.patient_id)
        .order_by(stored.desc(), Attachment.record_id)
        .limit(limit)
    ).all()
    patients = _patients(tenant_id, [row[1] for row in rows])
    records = {
        record.id: record
        for record in db.session.scalars(
            select(MedicalRecord).where(
                MedicalRecord.tenant_id == tenant_id, MedicalRecord.id.in_([row[0] for row in rows])
            )
        )
    }
    found = []
    for record_id, patient_id, count, size in rows:
        record, patient = records.get(record_id), patients.get(patient_id)
        if record is None or patient is None:
            continue
        label = f"Visit of {record.visit_at:%d %b %Y}" if record.visit_at else f"Record {record_id}"
        found.append(
            Largest(
                label, f"{patient.full_name} ({patient.mrn})", patient_id, record_id, int(count), int(size)
            )
        )
    return found


def _patients(tenant_id: int, ids: list[int]) -> dict[int, Patient]:
    if not ids:
        return {}
    query = select(Patient).where(Patient.tenant_id == tenant_id, Patient.id.in_(ids))
    return {patient.id: patient for patient in db.session.scalars(query)}


@dataclass(frozen=True)
class AgeRow:
    label: str
    objects: int
    bytes_stored: int


def files_by_age(tenant_id: int) -> list[AgeRow]:
    now = utcnow()
    version = AttachmentVersion
    age = case(
        *[(version.created_at > now - timedelta(days=high), index)
          for index, (_, _, high) in enumerate(AGE_BUCKETS) if high is not None],
        else_=len(AGE_BUCKETS) - 1,
    ).label("age")  # fmt: skip
    rows = dict(
        (index, (count, size))
        for index, count, size in db.session.execute(
            select(age, func.count(), func.coalesce(func.sum(version.stored_size), 0))
            .where(version.tenant_id == tenant_id)
            .group_by(age)
        )
    )
    return [
        AgeRow(label, int(rows.get(index, (0, 0))[0]), int(rows.get(index, (0, 0))[1]))
        for index, (label, _, _) in enumerate(AGE_BUCKETS)
    ]


@dataclass(frozen=True)
class ColdFiles:
    """Versions at least `days` old never opened later than `days` after their upload."""

    days: int
    objects: int
    bytes_stored: int
    moves: list[MoveSaving]


def _later_than(later, earlier, days: int):
    """`later` is more than `days` days after `earlier` (the databases add days to a time differently)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return later > earlier + func.make_interval(0, 0, 0, days)
    return func.julianday(later) - func.julianday(earlier) > days


def cold_files(tenant_id: int, prices: PriceTable) -> list[ColdFiles]:
    """For 30, 90 and 365 days: the files never opened after that long, and what moving them saves."""
    now = utcnow()
    version = AttachmentVersion
    found = []
    for days in COLD_AFTER_DAYS:
        opened_later = exists().where(
            FileAccess.tenant_id == tenant_id,
            FileAccess.version_id == version.id,
            _later_than(FileAccess.occurred_at, version.created_at, days),
        )
        bucket = metrics._bucket_of(version.stored_size).label("bucket")
        breakdown: dict[str, dict[str, list[int]]] = {}
        rows = db.session.execute(
            select(
                version.storage_class, bucket, func.count(), func.coalesce(func.sum(version.stored_size), 0)
            )
            .where(
                version.tenant_id == tenant_id,
                version.created_at <= now - timedelta(days=days),
                ~opened_later,
            )
            .group_by(version.storage_class, bucket)
        )
        for storage_class, key, count, size in rows:
            breakdown.setdefault(storage_class, {})[key] = [int(count), int(size), 0]
        objects = sum(v[0] for buckets in breakdown.values() for v in buckets.values())
        stored = sum(v[1] for buckets in breakdown.values() for v in buckets.values())
        moves = [move_saving(breakdown, target, prices) for target in MOVE_TARGETS]
        found.append(ColdFiles(days, objects, stored, moves))
    return found


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows."""

    today: date
    prices: PriceTable
    current: Current
    days: int
    trend: list[TrendPoint]
    forecast: Forecast | None
    largest_patients: list[Largest]
    largest_records: list[Largest]
    ages: list[AgeRow]
    cold: list[ColdFiles]
    warnings: list[checker.RuleWarning]


def clinic_day(tenant_id: int) -> date:
    tenant = db.session.get(Tenant, tenant_id)
    return clinic_today(tenant.timezone if tenant else None)


def prices() -> PriceTable:
    return load_prices(current_app.config)


def trend_and_forecast(
    tenant_id: int, days: int, table: PriceTable
) -> tuple[list[TrendPoint], Forecast | None]:
    """The trend of `days` days and the forecast (fitted to the last 90 days whatever `days` is)."""
    today = clinic_day(tenant_id)
    points = trend(tenant_id, today, max(days, FORECAST_DAYS), table)
    first = today - timedelta(days=days - 1)
    return [p for p in points if p.day >= first], cost_forecast(points)


def overview(actor: Actor, days: int = 30) -> Overview:
    """The dashboard's figures for the actor's clinic; audited (it names the largest patients)."""
    require(actor, "storage.view")
    tenant_id = actor.tenant_id
    table = prices()
    points, predicted = trend_and_forecast(tenant_id, days, table)
    found = Overview(
        today=clinic_day(tenant_id),
        prices=table,
        current=current(tenant_id, table),
        days=days,
        trend=points,
        forecast=predicted,
        largest_patients=largest_patients(tenant_id),
        largest_records=largest_records(tenant_id),
        ages=files_by_age(tenant_id),
        cold=cold_files(tenant_id, table),
        warnings=checker.check_rules(tenant_id),
    )
    record_event(actor, "storage.dashboard_viewed", resource_type="storage_dashboard", resource_id=tenant_id)
    db.session.commit()
    return found


def alert_state(tenant_id: int) -> tuple[list, list]:
    """The clinic's thresholds and alert history."""
    return alerts.thresholds(tenant_id), alerts.history(tenant_id)
