"""Uploads end to end on both backends (the local folder, and S3 on moto's HTTP server): the bytes travel
the way a browser sends them (a form POST, or PUTs of parts to presigned URLs), then the service checks
them and keeps a version."""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
from datetime import datetime

import pytest
import requests
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.files import previews, processing, services, uploads
from healthcrm.files.models import (
    PREVIEW_PENDING,
    PREVIEW_READY,
    SCAN_CLEAN,
    SCAN_INFECTED,
    SCAN_NOT_SCANNED,
    SCAN_PENDING,
    AttachmentVersion,
    FileAccess,
    UploadSession,
)
from healthcrm.files.storage import STORAGE_EXTENSION, S3Storage
from healthcrm.records.models import MedicalRecord
from tests.factories import make_patient, make_tenant, make_user
from tests.files.clamd_daemon import EICAR

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _dicom(size: int) -> bytes:
    """A DICOM-looking file of `size` bytes (preamble, marker, then filler)."""
    head = b"\x00" * 128 + b"DICM"
    filler = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    return (head + filler)[:size]


@pytest.fixture(params=["local", "s3"])
def backend(request, app, moto_url_or_none):
    if request.param == "s3":
        # The session's worker process stores locally: this test's jobs run here.
        request.getfixturevalue("inline_jobs")
        storage = S3Storage(bucket=f"t-{uuid.uuid4().hex[:12]}", endpoint_url=moto_url_or_none)
        storage.ensure_bucket()
        app.extensions[STORAGE_EXTENSION] = storage
    return request.param


@pytest.fixture
def moto_url_or_none(request):
    # Only the S3 parameter starts moto.
    if "s3" in request.node.callspec.params.values():
        return request.getfixturevalue("moto_url")
    return None


@pytest.fixture
def clinic(app):
    return make_upload_clinic()


def make_upload_clinic() -> dict:
    """A clinic with a doctor, a patient and a record to attach files to."""
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    patient = make_patient(tenant)
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=datetime(2026, 11, 20, 9, 30),
        chief_complaint="Scans",
    )
    db.session.add(record)
    db.session.commit()
    return {
        "tenant": tenant,
        "doctor": doctor,
        "actor": Actor(tenant_id=tenant.id, user_id=doctor.id, role="doctor"),
        "record": record,
    }


def _send(app, plan: uploads.UploadPlan, data: bytes, actor: Actor, *, only_parts=None) -> list:
    """Send the bytes as the browser would; return the (part number, etag) pairs sent."""
    client = app.test_client()
    if not plan.multipart:
        fields = dict(plan.post["fields"])
        if plan.post["url"].startswith("http"):
            answer = requests.post(plan.post["url"], data=fields, files={"file": ("f", data)}, timeout=30)
            assert answer.status_code in (200, 201, 204), answer.text
        else:
            answer = client.post(plan.post["url"], data={**fields, "file": (io.BytesIO(data), "f")})
            assert answer.status_code in (200, 201, 204), answer.get_data(as_text=True)
        return []
    numbers = only_parts or range(1, plan.part_count + 1)
    urls = uploads.part_urls(actor, plan.session.public_id, list(numbers))
    sent = []
    for number in numbers:
        body = data[(number - 1) * plan.part_size : number * plan.part_size]
        if urls[number].startswith("http"):
            answer = requests.put(urls[number], data=body, timeout=30)
            etag = answer.headers["ETag"]
        else:
            answer = client.put(urls[number], data=body, headers={"Content-Length": str(len(body))})
            etag = answer.headers["ETag"]
        assert answer.status_code == 200, answer.status_code
        sent.append((number, etag.strip('"')))
    return sent


def _upload(app, clinic, name: str, data: bytes, **kwargs) -> AttachmentVersion:
    actor = clinic["actor"]
    plan = uploads.start_upload(
        actor, clinic["record"].id, name, len(data), "application/pdf", f"{name}|{len(data)}", **kwargs
    )
    parts = _send(app, plan, data, actor)
    return uploads.complete_upload(actor, plan.session.public_id, parts)


def _bytes_of(actor, version) -> bytes:
    delivery = services.open_version(actor, version.attachment_id, version.id, inline=False)
    if delivery.redirect_url:
        return requests.get(delivery.redirect_url, timeout=30).content
    return b"".join(delivery.chunks)


def test_small_and_multipart_uploads_become_checked_versions(app, backend, clinic):
    actor = clinic["actor"]
    small = _upload(app, clinic, "scan.png", PNG)
    big_data = _dicom(12 * 1024 * 1024)
    big = _upload(app, clinic, "CT head.dcm", big_data)

    assert (small.kind, small.content_type, small.size) == ("png", "image/png", len(PNG))
    assert small.sha256 == hashlib.sha256(PNG).hexdigest()
    assert (big.kind, big.size, big.number) == ("dicom", len(big_data), 1)
    assert _bytes_of(actor, big) == big_data
    assert small.scan_status == SCAN_NOT_SCANNED and small.openable
    assert db.session.get(MedicalRecord, clinic["record"].id).attachment_count == 2
    if backend == "s3":
        assert big.storage_class == "INTELLIGENT_TIERING"


def test_an_interrupted_multipart_upload_resumes_from_the_parts_already_there(app, backend, clinic):
    actor, data = clinic["actor"], _dicom(20 * 1024 * 1024)
    fingerprint = f"study.dcm|{len(data)}|1700000000"
    plan = uploads.start_upload(actor, clinic["record"].id, "study.dcm", len(data), None, fingerprint)
    assert plan.multipart and plan.part_count == 3
    first = _send(app, plan, data, actor, only_parts=[1, 2])

    # "The page reloads": the same file chosen again finds the same session and the parts already sent.
    again = uploads.start_upload(actor, clinic["record"].id, "study.dcm", len(data), None, fingerprint)
    assert again.session.public_id == plan.session.public_id
    assert [p["part_number"] for p in again.uploaded_parts] == [1, 2]
    rest = _send(app, again, data, actor, only_parts=[3])
    version = uploads.complete_upload(actor, plan.session.public_id, first + rest)
    assert _bytes_of(actor, version) == data


def test_a_fake_pdf_is_rejected_with_the_reason_and_leaves_nothing(app, backend, clinic):
    html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    with pytest.raises(uploads.UploadRejected, match=r"(?i)html"):
        _upload(app, clinic, "results.pdf", html)
    assert db.session.scalar(select(func.count()).select_from(AttachmentVersion)) == 0
    session = db.session.scalar(select(UploadSession))
    assert session.status == "rejected" and "HTML" in session.error
    assert app.extensions[STORAGE_EXTENSION].head(session.storage_key) is None


def test_same_name_makes_version_two_and_restore_makes_version_three(app, backend, clinic):
    actor = clinic["actor"]
    first = _upload(app, clinic, "notes.txt", b"first text\n" * 50)
    second = _upload(app, clinic, "notes.txt", b"second text\n" * 50)
    assert (first.attachment_id, second.number) == (second.attachment_id, 2)
    restored = services.restore_version(actor, first.attachment_id, first.id)
    assert restored.number == 3 and restored.restored_from_id == first.id
    assert restored.attachment.current_version_id == restored.id
    assert _bytes_of(actor, restored) == b"first text\n" * 50
    comparison = services.compare_versions(actor, first.attachment_id, first.id, second.id)
    assert ("removed", "first text") in comparison.diff and ("added", "second text") in comparison.diff


def test_text_is_stored_compressed_and_read_back_as_it_was(app, backend, clinic):
    actor = clinic["actor"]
    csv = b"code,value,unit\n" + b"".join(b"1742-6,%d,U/L\n" % n for n in range(5000))
    version = _upload(app, clinic, "labs.csv", csv)
    assert version.compression == "gzip" and version.stored_size < version.size / 3
    assert version.compression_ratio < 0.34
    storage = app.extensions[STORAGE_EXTENSION]
    with storage.open_stream(version.storage_key) as stored:
        raw = stored.read()
    assert gzip.decompress(raw) == csv and hashlib.sha256(raw).hexdigest() == version.stored_sha256
    assert _bytes_of(actor, version) == csv


def test_a_changed_object_is_not_sent(app, backend, clinic):
    actor = clinic["actor"]
    version = _upload(app, clinic, "scan.png", PNG)
    storage = app.extensions[STORAGE_EXTENSION]
    storage.put_stream(version.storage_key, io.BytesIO(PNG + b"tampered"), "image/png")
    with pytest.raises(services.ChecksumMismatch):
        services.open_version(actor, version.attachment_id, version.id, inline=False)
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "attachment.checksum_mismatch")
        )
        == 1
    )


def test_every_open_is_counted_and_audited(app, clinic):
    actor = clinic["actor"]
    version = _upload(app, clinic, "scan.png", PNG)
    services.open_version(actor, version.attachment_id, version.id, inline=True)
    services.open_version(actor, version.attachment_id, version.id, inline=False)
    actions = db.session.scalars(select(FileAccess.action).order_by(FileAccess.id)).all()
    assert actions == ["view", "download"]
    audited = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.in_(["attachment.view", "attachment.download"]))
    ).all()
    assert sorted(audited) == ["attachment.download", "attachment.view"]


def test_size_limit_and_quota_refuse_before_any_byte_moves(app, clinic):
    actor = clinic["actor"]
    app.config["ATTACHMENT_MAX_BYTES"] = 1000
    with pytest.raises(uploads.UploadRejected, match="limit"):
        uploads.start_upload(actor, clinic["record"].id, "big.pdf", 5000, None, "x")
    app.config["ATTACHMENT_MAX_BYTES"] = 10**9
    clinic["tenant"].storage_quota_bytes = 100
    db.session.commit()
    with pytest.raises(uploads.UploadRejected, match="storage is full"):
        uploads.start_upload(actor, clinic["record"].id, "big.pdf", 5000, None, "x")


def test_eicar_is_quarantined_and_the_uploader_told(app, inline_jobs, clinic, clamd_server, outbox_dir):
    app.config.update(CLAMD_HOST=clamd_server.host, CLAMD_PORT=clamd_server.port)
    actor = clinic["actor"]
    clean = _upload(app, clinic, "clean.txt", b"nothing to see\n")
    infected = _upload(app, clinic, "eicar.txt", EICAR)
    db.session.expire_all()
    clean, infected = (db.session.get(AttachmentVersion, v.id) for v in (clean, infected))
    assert clean.scan_status == SCAN_CLEAN
    assert infected.scan_status == SCAN_INFECTED and "EICAR" in infected.scan_signature
    assert infected.storage_key.startswith(f"{clinic['tenant'].id}/quarantine/")
    with pytest.raises(services.FileNotOpenable, match="quarantined"):
        services.open_version(actor, infected.attachment_id, infected.id, inline=False)
    assert any("quarantined" in path.read_text() for path in outbox_dir.glob("*.eml"))


def test_a_pending_scan_keeps_the_file_closed(app, inline_jobs, clinic):
    app.config.update(CLAMD_HOST="127.0.0.1", CLAMD_PORT=1)  # nothing listens: the scan job fails
    version = _upload(app, clinic, "scan.png", PNG)
    db.session.expire_all()
    version = db.session.get(AttachmentVersion, version.id)
    assert version.scan_status != SCAN_CLEAN and not version.openable
    with pytest.raises(services.FileNotOpenable, match="virus scan"):
        services.open_version(clinic["actor"], version.attachment_id, version.id, inline=False)
    assert SCAN_PENDING  # the state a new upload starts in when clamd is configured
    assert processing.quarantine_key(version).startswith(f"{clinic['tenant'].id}/quarantine/")


def test_no_decoder_runs_on_a_file_before_its_clean_scan(app, inline_jobs, clinic, monkeypatch):
    decoded = []
    monkeypatch.setattr(previews, "thumbnail", lambda *args, **kwargs: decoded.append(args) or None)
    app.config.update(CLAMD_HOST="127.0.0.1", CLAMD_PORT=1)  # nothing listens: the scan stays pending
    version = _upload(app, clinic, "scan.png", PNG)
    assert processing.make_previews(version.id, version.tenant_id) == processing.WAITING_FOR_SCAN
    db.session.expire_all()
    version = db.session.get(AttachmentVersion, version.id)
    assert decoded == [] and version.preview_status == PREVIEW_PENDING and version.preview_key is None


def test_a_clean_scan_queues_the_previews(app, inline_jobs, clinic, clamd_server):
    app.config.update(CLAMD_HOST=clamd_server.host, CLAMD_PORT=clamd_server.port)
    version = _upload(app, clinic, "scan.png", PNG)
    db.session.expire_all()
    version = db.session.get(AttachmentVersion, version.id)
    assert version.scan_status == SCAN_CLEAN and version.preview_status == PREVIEW_READY


def test_ensure_bucket_command_sets_cors_for_the_public_url(app, moto_url):
    storage = S3Storage(bucket=f"t-{uuid.uuid4().hex[:12]}", endpoint_url=moto_url)
    app.extensions[STORAGE_EXTENSION] = storage
    result = app.test_cli_runner().invoke(args=["files", "ensure-bucket"])
    assert result.exit_code == 0, result.output
    rules = storage.client.get_bucket_cors(Bucket=storage.bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == [app.config["PUBLIC_URL"]] and "ETag" in rules[0]["ExposeHeaders"]


def test_a_finalized_record_takes_a_file_only_with_one_of_its_addenda(app, clinic):
    from healthcrm.records.models import Addendum

    record, actor = clinic["record"], clinic["actor"]
    record.status = "finalized"
    db.session.commit()
    with pytest.raises(uploads.FinalizedWithoutAddendum) as refused:
        uploads.start_upload(actor, record.id, "scan.pdf", 100, "application/pdf", "scan.pdf|100")
    assert "only with an addendum" in refused.value.reason
    assert db.session.scalar(select(func.count()).select_from(UploadSession)) == 0
    other = make_upload_clinic()
    elsewhere = Addendum(
        tenant_id=other["tenant"].id, record_id=other["record"].id, author_id=other["doctor"].id, text="x"
    )
    addendum = Addendum(
        tenant_id=record.tenant_id, record_id=record.id, author_id=clinic["doctor"].id, text="Scan attached."
    )
    db.session.add_all([elsewhere, addendum])
    db.session.commit()
    with pytest.raises(LookupError):
        uploads.start_upload(actor, record.id, "scan.pdf", 100, None, "f", addendum_id=elsewhere.id)
    plan = uploads.start_upload(actor, record.id, "scan.pdf", 100, None, "f", addendum_id=addendum.id)
    assert plan.session.record_id == record.id
    started = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "attachment.upload_start"))
    assert [event.changed_fields for event in started] == ['["addendum"]']
