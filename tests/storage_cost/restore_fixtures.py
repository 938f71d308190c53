"""Fixtures of the restore, class-refresh and sweeper tests: a clinic with people, a record and a patient
document, files stored in a chosen class, and the app on the local folder or on moto's S3 server.

Imported by the test modules (`from tests.storage_cost.restore_fixtures import *`-style names), so the
area's other test modules keep their own conftest free of these."""

from __future__ import annotations

import hashlib
import io
import uuid
from datetime import datetime

import pytest
from flask import current_app

from healthcrm.extensions import db
from healthcrm.files.models import SCAN_NOT_SCANNED, SOURCE_STAFF, Attachment, AttachmentVersion
from healthcrm.files.storage import STORAGE_EXTENSION, S3Storage, get_storage, make_key
from healthcrm.records.models import FINALIZED, MedicalRecord
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user
from tests.files.conftest import moto_url as moto_url  # the S3 server fixture, shared

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def record_of(
    tenant, patient, doctor, *, status: str = FINALIZED, complaint: str = "Liver scan"
) -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=datetime(2025, 1, 20, 9, 30),
        chief_complaint=complaint,
        status=status,
    )
    db.session.add(record)
    db.session.commit()
    return record


def stored_file(
    *,
    tenant_id: int,
    patient_id: int,
    record_id: int | None,
    name: str = "scan.pdf",
    data: bytes = PDF,
    storage_class: str = "GLACIER",
    kind: str = "pdf",
    content_type: str = "application/pdf",
    visible_to_patient: bool = True,
    stored_size: int | None = None,
) -> AttachmentVersion:
    """A clean file stored in `storage_class`, with its attachment (on the record, or a patient document
    when `record_id` is None). `stored_size` overrides the size the row records (the prices' base)."""
    storage = get_storage(current_app)
    owner = record_id if record_id is not None else f"patient-{patient_id}"
    key = make_key(tenant_id, owner, name)
    stored = storage.put_stream(key, io.BytesIO(data), content_type, storage_class=storage_class)
    digest = hashlib.sha256(data).hexdigest()
    attachment = Attachment(
        tenant_id=tenant_id,
        record_id=record_id,
        patient_id=patient_id,
        filename=name,
        name_key=f"{name.casefold()}-{uuid.uuid4().hex[:6]}",
        source=None if record_id is not None else SOURCE_STAFF,
        visible_to_patient=visible_to_patient,
    )
    version = AttachmentVersion(
        tenant_id=tenant_id,
        attachment=attachment,
        number=1,
        storage_key=key,
        original_name=name,
        kind=kind,
        content_type=content_type,
        size=len(data),
        stored_size=stored_size if stored_size is not None else len(data),
        sha256=digest,
        stored_sha256=digest,
        stored_etag=stored.etag,
        storage_class=stored.storage_class,
        scan_status=SCAN_NOT_SCANNED,
        preview_status="none",
    )
    db.session.add_all([attachment, version])
    db.session.flush()
    attachment.current_version_id = version.id
    db.session.commit()
    return version


@pytest.fixture
def clinic(app):
    tenant = make_tenant("Riverbend Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Ada Quinn")
    patient = make_patient(tenant, first_name="Liv", last_name="Hepburn")
    other_patient = make_patient(tenant, first_name="Noor", last_name="Haddad")
    return {
        "tenant": tenant,
        "admin": make_user(tenant, "admin", full_name="Ana Admin"),
        "doctor": doctor,
        "coach": make_user(tenant, "coach"),
        "front_desk": make_user(tenant, "front_desk"),
        "patient": patient,
        "portal": make_portal_user(patient),
        "other_patient": other_patient,
        "other_portal": make_portal_user(other_patient),
        "record": record_of(tenant, patient, doctor),
    }


@pytest.fixture
def other_clinic(app):
    tenant = make_tenant("Hillside Clinic")
    doctor = make_user(tenant, "doctor")
    patient = make_patient(tenant)
    return {
        "tenant": tenant,
        "doctor": doctor,
        "admin": make_user(tenant, "admin"),
        "patient": patient,
        "record": record_of(tenant, patient, doctor),
    }


def signed_in(app, user):
    """A browser of its own, signed in as `user`."""
    browser = app.test_client()
    assert login(browser, user.email).status_code == 303
    return browser


def _own_folder(app, tmp_path, restore_seconds: int):
    # A folder of this test's own even when a worker process shares one (REDIS_URL): the sweeper and the
    # class refresh list a clinic's whole prefix, and clinic ids start again at 1 in every test.
    app.config["STORAGE_LOCAL_ROOT"] = str(tmp_path / "own-storage")
    app.config["STORAGE_LOCAL_RESTORE_SECONDS"] = restore_seconds
    app.extensions.pop(STORAGE_EXTENSION, None)
    return get_storage(app)


@pytest.fixture
def local_now(app, inline_jobs, tmp_path):
    """The local folder, restoring at once (STORAGE_LOCAL_RESTORE_SECONDS=0); jobs inline."""
    return _own_folder(app, tmp_path, 0)


@pytest.fixture
def local_slow(app, inline_jobs, tmp_path):
    """The local folder with a minute's restore (the default); jobs inline."""
    return _own_folder(app, tmp_path, 60)


@pytest.fixture
def s3(app, inline_jobs, moto_url):
    """moto's S3 server (restores complete at once), a bucket of this test's own; jobs inline."""
    storage = S3Storage(bucket=f"restore-{uuid.uuid4().hex[:12]}", endpoint_url=moto_url)
    storage.ensure_bucket()
    app.config.update(STORAGE_BACKEND="s3", S3_BUCKET=storage.bucket, S3_ENDPOINT_URL=moto_url)
    app.extensions[STORAGE_EXTENSION] = storage
    return storage


@pytest.fixture(params=["local", "s3"])
def store(request):
    """Each test twice: on the local folder (restoring at once) and on moto's S3."""
    return request.getfixturevalue("local_now" if request.param == "local" else "s3")
