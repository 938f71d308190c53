"""The patient's visits, prescriptions and results on their portal timeline (portal/feed.py), one query
per page each, and "new results" on the dashboard. Only what the patient may see: finalized visits (and
their prescriptions), released results."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import and_, func, or_, select, true

from ..extensions import db
from ..portal.feed import Attention, Cursor, TimelineItem, attention_source, timeline_source
from ..portal.models import Notification
from .models import FINALIZED, LabResult, MedicalRecord, Prescription
from .patient_view import patient_today, plain_flag, released


def _older_than(at, key, before: Cursor):
    if before is None:
        return true()
    before_at, before_key = before
    return or_(at < before_at, and_(at == before_at, key < before_key))


@timeline_source("visit", "Visits")
def visit_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    at = func.coalesce(MedicalRecord.finalized_at, MedicalRecord.visit_at)
    rows = db.session.execute(
        select(MedicalRecord.id, MedicalRecord.chief_complaint, at.label("at"))
        .where(
            MedicalRecord.tenant_id == tenant_id,
            MedicalRecord.patient_id == patient_id,
            MedicalRecord.status == FINALIZED,
            _older_than(at, MedicalRecord.id, before),
        )
        .order_by(at.desc(), MedicalRecord.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineItem(
            kind="visit",
            at=row.at,
            key=row.id,
            title="A visit was signed",
            detail=row.chief_complaint,
            link=url_for("portal_records.show", record_id=row.id),
        )
        for row in rows
    ]


@timeline_source("prescription", "Prescriptions")
def prescription_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    """Prescriptions of the patient's finalized visits, at the time their visit was signed."""
    at = func.coalesce(MedicalRecord.finalized_at, MedicalRecord.visit_at)
    rows = db.session.execute(
        select(Prescription.id, Prescription.drug, Prescription.dose, Prescription.frequency, at.label("at"))
        .join(MedicalRecord, MedicalRecord.id == Prescription.record_id)
        .where(
            Prescription.tenant_id == tenant_id,
            MedicalRecord.tenant_id == tenant_id,
            MedicalRecord.patient_id == patient_id,
            MedicalRecord.status == FINALIZED,
            _older_than(at, Prescription.id, before),
        )
        .order_by(at.desc(), Prescription.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineItem(
            kind="prescription",
            at=row.at,
            key=row.id,
            title=f"Prescribed: {row.drug}",
            detail=", ".join(part for part in (row.dose, row.frequency) if part) or None,
            link=url_for("portal_records.medications"),
        )
        for row in rows
    ]


@timeline_source("result", "Results")
def result_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    results = db.session.scalars(
        select(LabResult)
        .where(
            LabResult.tenant_id == tenant_id,
            LabResult.patient_id == patient_id,
            released(patient_today(tenant_id)),
            _older_than(LabResult.observed_at, LabResult.id, before),
        )
        .order_by(LabResult.observed_at.desc(), LabResult.id.desc())
        .limit(limit)
    )
    return [
        TimelineItem(
            kind="result",
            at=lab.observed_at,
            key=lab.id,
            title=f"Result: {lab.name}",
            detail=(plain_flag(lab) or "").capitalize() or None,
            link=url_for("portal_records.labs"),
        )
        for lab in results
    ]


@attention_source
def new_results(tenant_id: int, patient_id: int, user_id: int) -> list[Attention]:
    count = db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.tenant_id == tenant_id,
            Notification.user_id == user_id,
            Notification.kind == "result",
            Notification.read_at.is_(None),
        )
    )
    if not count:
        return []
    text = "1 new result" if count == 1 else f"{count} new results"
    return [Attention(text=text, link=url_for("portal_records.labs"), count=count)]
