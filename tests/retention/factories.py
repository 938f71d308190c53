"""Patients with a history old enough to be due, and a file in real storage."""

from __future__ import annotations

import io
from datetime import date, datetime

from flask import current_app

from healthcrm.extensions import db
from healthcrm.files.models import Attachment, AttachmentVersion
from healthcrm.files.storage import get_storage
from healthcrm.records.models import MedicalRecord
from tests.factories import make_patient

LONG_AGO = datetime(1990, 1, 1, 12, 0)


def old_patient(tenant, doctor, *, visit: datetime | None = datetime(2001, 3, 4, 10, 0), **fields):
    """A patient added in 1990 with one visit (by default in 2001): due under any rule of today."""
    fields.setdefault("date_of_birth", date(1950, 5, 6))
    patient = make_patient(tenant, created_at=LONG_AGO, **fields)
    if visit is not None:
        add_visit(patient, doctor, visit)
    return patient


def add_visit(patient, doctor, when: datetime) -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=when,
        chief_complaint="Cough",
        status="finalized",
    )
    db.session.add(record)
    db.session.commit()
    return record


def add_file(record: MedicalRecord, data: bytes = b"%PDF-1.4 scan") -> AttachmentVersion:
    """An attachment of the record with one version stored in the app's storage."""
    key = f"{record.tenant_id}/records/{record.id}/scan-{record.id}.pdf"
    get_storage(current_app).put_stream(key, io.BytesIO(data), "application/pdf")
    attachment = Attachment(
        tenant_id=record.tenant_id, record_id=record.id, patient_id=record.patient_id, filename="scan.pdf",
        name_key="scan.pdf",
    )  # fmt: skip
    db.session.add(attachment)
    db.session.flush()
    version = AttachmentVersion(
        tenant_id=record.tenant_id, attachment_id=attachment.id, number=1, storage_key=key,
        original_name="scan.pdf", kind="pdf", content_type="application/pdf", size=len(data),
        stored_size=len(data), sha256="0" * 64, stored_sha256="0" * 64,
    )  # fmt: skip
    db.session.add(version)
    db.session.flush()
    attachment.current_version_id = version.id
    db.session.commit()
    return version
