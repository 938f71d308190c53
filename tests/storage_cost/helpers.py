"""Clinics with records and stored file versions of chosen sizes, states and ages."""

from __future__ import annotations

import hashlib
import io
import itertools
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from healthcrm.accounts.models import Tenant, User
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.files.models import Attachment, AttachmentVersion, FileAccess
from healthcrm.files.storage import get_storage, make_key
from healthcrm.patients.models import Patient
from healthcrm.records.models import MedicalRecord
from tests.factories import make_patient, make_tenant, make_user

KB = 1024
_names = itertools.count(1)


@dataclass
class Clinic:
    tenant: Tenant
    admin: User
    doctor: User
    patient: Patient

    @property
    def id(self) -> int:
        return self.tenant.id

    def actor(self, user: User | None = None) -> Actor:
        user = user or self.admin
        return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def make_clinic(name: str = "Lifecycle Clinic") -> Clinic:
    tenant = make_tenant(name)
    return Clinic(tenant, make_user(tenant, "admin"), make_user(tenant, "doctor"), make_patient(tenant))


def add_record(clinic: Clinic, status: str = "finalized", patient: Patient | None = None) -> MedicalRecord:
    patient = patient or clinic.patient
    record = MedicalRecord(
        tenant_id=clinic.id,
        patient_id=patient.id,
        doctor_id=clinic.doctor.id,
        author_id=clinic.doctor.id,
        visit_at=datetime(2026, 1, 5, 10, 0),
        chief_complaint="Check-up",
        status=status,
    )
    db.session.add(record)
    db.session.commit()
    return record


def add_version(
    clinic: Clinic,
    record: MedicalRecord | None = None,
    *,
    size: int = 200 * KB,
    storage_class: str = "STANDARD",
    scan_status: str = "clean",
    attachment: Attachment | None = None,
    patient: Patient | None = None,
    created_at: datetime | None = None,
    store: bool = True,
) -> AttachmentVersion:
    """A version of `size` stored bytes (really stored when `store`), on the record, or a patient document
    without one; a new attachment unless `attachment` is given (then the next version of it)."""
    patient = patient or (record.patient if record is not None else clinic.patient)
    data = (b"%PDF-1.4 " + b"x" * size)[:size]
    if attachment is None:
        name = f"scan-{next(_names)}.pdf"
        attachment = Attachment(
            tenant_id=clinic.id,
            record_id=record.id if record else None,
            patient_id=patient.id,
            filename=name,
            name_key=name,
            source=None if record else "staff",
        )
        db.session.add(attachment)
        db.session.flush()
    key = make_key(clinic.id, record.id if record else f"patient-{patient.id}", attachment.filename)
    etag = None
    if store:
        etag = get_storage(current_app).put_stream(key, io.BytesIO(data), "application/pdf").etag
    digest = hashlib.sha256(data).hexdigest()
    number = max((v.number for v in attachment.versions), default=0) + 1
    version = AttachmentVersion(
        tenant_id=clinic.id,
        attachment_id=attachment.id,
        number=number,
        storage_key=key,
        original_name=attachment.filename,
        kind="pdf",
        content_type="application/pdf",
        size=size,
        stored_size=size,
        sha256=digest,
        stored_sha256=digest,
        stored_etag=etag,
        storage_class=storage_class,
        scan_status=scan_status,
    )
    if created_at is not None:
        version.created_at = created_at
    db.session.add(version)
    db.session.flush()
    attachment.current_version_id = version.id
    db.session.commit()
    return version


def opened(version: AttachmentVersion, user: User, when: datetime) -> None:
    """An entry of the files' access log, as a view at `when` leaves."""
    db.session.add(
        FileAccess(
            tenant_id=version.tenant_id,
            attachment_id=version.attachment_id,
            version_id=version.id,
            user_id=user.id,
            action="view",
            occurred_at=when,
        )
    )
    db.session.commit()
