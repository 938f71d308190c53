"""Demo archived files, to try the restore flow: for the clinic's first portal patient, an old clinic letter
among their documents and an old report on their first signed visit, both stored in GLACIER (the local
folder plays the class; its restore is ready after STORAGE_LOCAL_RESTORE_SECONDS).

Opening either shows "This file is archived" with the retrieval speeds and their price; a share of that
visit shows the report as "being retrieved". Written in the seeding transaction, like portal_docs."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..accounts.models import DOCTOR, Tenant, User
from ..clock import utcnow
from ..extensions import db
from ..files.models import PREVIEW_NONE, SCAN_NOT_SCANNED, SOURCE_STAFF, Attachment, AttachmentVersion
from ..files.storage import get_storage, make_key
from ..files.uploads import name_key
from ..patients.models import Patient
from ..records.models import FINALIZED, MedicalRecord
from .portal_docs import _letter

ARCHIVED_CLASS = "GLACIER"
AGE = timedelta(days=400)


def _store(tenant: Tenant, patient: Patient, doctor: User, record_id: int | None, name: str, data: bytes):
    owner = record_id if record_id is not None else f"patient-{patient.id}"
    key = make_key(tenant.id, owner, name)
    stored = get_storage(current_app).put_stream(
        key, io.BytesIO(data), "application/pdf", storage_class=ARCHIVED_CLASS
    )
    at = utcnow() - AGE
    sha256 = hashlib.sha256(data).hexdigest()
    attachment = Attachment(
        tenant_id=tenant.id, record_id=record_id, patient_id=patient.id, filename=name,
        name_key=name_key(name), created_by_id=doctor.id, created_at=at, updated_at=at,
        source=SOURCE_STAFF if record_id is None else None, visible_to_patient=record_id is None,
    )  # fmt: skip
    version = AttachmentVersion(
        tenant_id=tenant.id, attachment=attachment, number=1, storage_key=key, original_name=name,
        kind="pdf", content_type="application/pdf", size=len(data), stored_size=stored.size, sha256=sha256,
        stored_sha256=sha256, stored_etag=stored.etag, storage_class=stored.storage_class,
        scan_status=SCAN_NOT_SCANNED, preview_status=PREVIEW_NONE, uploaded_by_id=doctor.id, created_at=at,
    )  # fmt: skip
    db.session.add_all([attachment, version])
    db.session.flush()
    attachment.current_version_id = version.id


def seed(tenant: Tenant, patients: list[Patient], staff: dict[str, User]) -> int:
    """Add the two archived files; flushes, does not commit. Returns how many were added."""
    first_portal = db.session.scalar(
        select(User)
        .where(User.tenant_id == tenant.id, User.patient_id.is_not(None))
        .order_by(User.id)
        .limit(1)
    )
    patient = next((p for p in patients if first_portal and p.id == first_portal.patient_id), None)
    if patient is None:
        return 0
    doctor = staff[DOCTOR]
    letter = _letter(tenant, patient, doctor)
    _store(tenant, patient, doctor, None, "Letter after your visit last year.pdf", letter)
    visit = db.session.scalar(
        select(MedicalRecord)
        .where(
            MedicalRecord.tenant_id == tenant.id,
            MedicalRecord.patient_id == patient.id,
            MedicalRecord.status == FINALIZED,
        )
        .order_by(MedicalRecord.visit_at)
        .limit(1)
    )
    if visit is None:
        return 1
    _store(tenant, patient, doctor, visit.id, "Ultrasound report (archived).pdf", letter)
    visit.attachment_count = (visit.attachment_count or 0) + 1
    return 2
