"""After an upload: the virus scan and the previews, each run as a job by version id (idempotent)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from typing import IO

from flask import current_app, url_for

from ..accounts.models import User
from ..audit.services import Actor
from ..clock import utcnow
from ..extensions import db
from ..mail.services import compose, deliver
from ..tenancy import get_scoped
from . import checks, previews, scan
from .models import (
    PREVIEW_NONE,
    PREVIEW_PENDING,
    PREVIEW_READY,
    SCAN_CLEAN,
    SCAN_FAILED,
    SCAN_INFECTED,
    SCAN_PENDING,
    AttachmentVersion,
)
from .services import read_version
from .storage import LocalStorage, Storage, get_storage, validate_key
from .uploads import audit_file, queue_previews

THUMBNAIL_KINDS = frozenset({"jpeg", "png", "tiff", "heic"})
PREVIEW_KINDS = THUMBNAIL_KINDS | {"dicom"}


def _storage() -> Storage:
    return get_storage(current_app)


class _ChunkReader:
    """A file-like reader over a version's (decompressed) chunks."""

    def __init__(self, version: AttachmentVersion):
        self._chunks = read_version(version)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        self._chunks.close()


def scan_version(version_id: int, tenant_id: int) -> str:
    """Scan a pending version with clamd: clean opens it; infected quarantines it and tells the uploader.
    A clamd error raises (the job retries); the version stays closed meanwhile."""
    version = get_scoped(AttachmentVersion, version_id, tenant_id)
    if version is None or version.scan_status not in (SCAN_PENDING, SCAN_FAILED):
        return version.scan_status if version else "gone"
    host, port = current_app.config.get("CLAMD_HOST"), int(current_app.config.get("CLAMD_PORT") or 3310)
    reader = _ChunkReader(version)
    try:
        result = scan.scan_stream(reader, host, port)
    except scan.ScanError:
        version.scan_status = SCAN_FAILED
        db.session.commit()
        raise
    finally:
        reader.close()
    version.scanned_at = utcnow()
    actor = Actor.system(version.tenant_id)
    if result.clean:
        version.scan_status = SCAN_CLEAN
        audit_file(actor, "attachment.scan_clean", version.attachment_id, version.attachment.patient_id)
        db.session.commit()
        queue_previews(version)
        return SCAN_CLEAN
    _quarantine(version)
    version.scan_status, version.scan_signature = SCAN_INFECTED, (result.signature or "unknown")[:200]
    audit_file(
        actor,
        "attachment.quarantine",
        version.attachment_id,
        version.attachment.patient_id,
        outcome="failure",
    )
    db.session.commit()
    _tell_uploader(version)
    return SCAN_INFECTED


def quarantine_key(version: AttachmentVersion) -> str:
    name = version.storage_key.rsplit("/", 1)[-1]
    return validate_key(f"{version.tenant_id}/quarantine/{version.id}-{name}")


def _quarantine(version: AttachmentVersion) -> None:
    """Move the object under the clinic's quarantine prefix (kept for inspection, never served)."""
    storage = _storage()
    target = quarantine_key(version)
    if version.storage_key == target:
        return
    with storage.open_stream(version.storage_key) as stored:
        storage.put_stream(target, stored, "application/octet-stream", content_encoding=version.compression)
    storage.delete(version.storage_key)
    version.storage_key = target
    version.preview_key = version.image_key = None
    version.preview_status = PREVIEW_NONE


def _tell_uploader(version: AttachmentVersion) -> None:
    user = get_scoped(User, version.uploaded_by_id, version.tenant_id)
    if user is None or not user.email:
        return
    attachment = version.attachment
    if attachment.record_id is None and user.patient_id is not None:
        # A patient's own upload: the portal's documents page says it is quarantined; an email would
        # carry the file's name, and portal emails carry no health information.
        return
    base = current_app.config["PUBLIC_URL"]
    with current_app.test_request_context(base_url=base):
        if attachment.record_id is None:
            url = url_for("patients.show", patient_id=attachment.patient_id, _external=True)
        else:
            url = url_for("records.show", record_id=attachment.record_id, _external=True)
    deliver(
        compose(
            user.email,
            "file_quarantined",
            tenant_id=version.tenant_id,
            user=user,
            version=version,
            url=url,
        )
    )


WAITING_FOR_SCAN = "waiting for scan"


def make_previews(version_id: int, tenant_id: int) -> str:
    """Thumbnails for images; for DICOM the main metadata, the first frame as PNG and its thumbnail."""
    version = get_scoped(AttachmentVersion, version_id, tenant_id)
    if version is None or version.preview_status != PREVIEW_PENDING:
        return version.preview_status if version else "gone"
    if version.scan_status == SCAN_INFECTED:
        version.preview_status = PREVIEW_NONE
        db.session.commit()
        return PREVIEW_NONE
    if not version.openable:
        # Pillow and pydicom never parse a file clamd has not passed: the clean scan queues this again.
        return WAITING_FOR_SCAN
    if version.kind not in PREVIEW_KINDS:
        # PDFs open in the browser; text shows as text: nothing to render.
        version.preview_status = PREVIEW_NONE
        db.session.commit()
        return PREVIEW_NONE
    storage = _storage()
    thumb = None
    with _seekable_copy(storage, version) as local:
        if version.kind in THUMBNAIL_KINDS:
            thumb = previews.thumbnail(local, version.kind)
        else:
            try:
                version.details = previews.dicom_summary(local).as_dict()
            except previews.DicomUnreadable:
                version.details = None
            local.seek(0)
            image = previews.dicom_png(local)
            if image is not None:
                key = validate_key(f"{version.tenant_id}/previews/{version.id}-image.png")
                storage.put_stream(key, _bytes_io(image), "image/png")
                version.image_key = key
                thumb = previews.thumbnail(_bytes_io(image), "png")
    if thumb is not None:
        key = validate_key(f"{version.tenant_id}/previews/{version.id}-thumb")
        thumb_kind = "png" if version.kind == "dicom" else version.kind
        storage.put_stream(key, _bytes_io(thumb), previews.thumbnail_content_type(thumb_kind))
        version.preview_key = key
    version.preview_status = (
        PREVIEW_READY if (version.preview_key or version.image_key or version.details) else PREVIEW_NONE
    )
    db.session.commit()
    return version.preview_status


@contextlib.contextmanager
def _seekable_copy(storage: Storage, version: AttachmentVersion) -> Iterator[IO[bytes]]:
    """The version's bytes as a seekable file: the local object itself when it is stored as is, else a
    temporary copy (S3 bodies and gzip streams cannot seek; pydicom and Pillow need to)."""
    if isinstance(storage, LocalStorage) and version.compression is None:
        with storage.open_stream(version.storage_key) as stored:
            yield stored
        return
    with tempfile.TemporaryFile() as local:
        reader = _ChunkReader(version)
        try:
            checks.hashing_copy(reader, local)
        finally:
            reader.close()
        local.seek(0)
        yield local


def _bytes_io(data: bytes):

    return io.BytesIO(data)
