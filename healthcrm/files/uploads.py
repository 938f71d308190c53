"""Uploads: from the browser's first byte to a checked attachment version.

1. `start_upload` checks the declared size against the file limit and the clinic's quota and plans the
   upload: one presigned POST (small files) or a multipart upload with presigned part URLs (over
   MULTIPART_ABOVE_BYTES). The same file (name, size, modification time) started again on the same
   record resumes the open session, with the parts the store already has.
2. The browser sends the bytes straight to the store (S3, or the app's own signed routes on the local
   backend, which stream to disk).
3. `complete_upload` joins the parts, then checks what actually arrived: its type by content, its size,
   its SHA-256; compresses text-like files when that saves space; and only then creates the version
   (a new attachment, or the next version of the attachment of that name). A rejected file is deleted
   and the session says why.

Services know nothing of the request; views pass an `Actor`.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

from flask import current_app
from sqlalchemy import func, or_, select, update

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..errors import NotFound
from ..extensions import db
from ..files.storage import (
    MULTIPART_MIN_PART_BYTES,
    S3Storage,
    Storage,
    UploadNotFoundError,
    get_storage,
    make_key,
)
from ..jobs.queue import enqueue
from ..records.models import Addendum, MedicalRecord
from ..records.services import WRITERS, NotAllowed
from ..tenancy import get_scoped, scoped
from . import checks
from .models import (
    PREVIEW_PENDING,
    SCAN_NOT_SCANNED,
    SCAN_PENDING,
    UPLOAD_ABORTED,
    UPLOAD_COMPLETING,
    UPLOAD_DONE,
    UPLOAD_REJECTED,
    UPLOADING,
    Attachment,
    AttachmentVersion,
    UploadSession,
)

MULTIPART_ABOVE_BYTES = 5 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024  # >= S3's 5 MiB minimum; 1 GB is 128 parts
MAX_PARTS = 10_000
# A claim to complete an upload older than this belongs to a request that died (checking a 2 GB file takes
# well under a minute): another "complete" may take it over.
COMPLETION_STALE_AFTER = timedelta(minutes=15)
PART_URLS_PER_CALL = 100
UPLOAD_URL_SECONDS = 3600
S3_STORAGE_CLASS = "INTELLIGENT_TIERING"
MAX_NAME_CHARS = 255


class UploadBusy(Exception):
    """Another request is completing this upload right now (a double click, a retry): answered 409, and
    nothing is deleted or changed by this one."""

    reason = "This upload is being completed already; wait a moment and reload the page."


class UploadRejected(Exception):
    """The file cannot be attached; `reason` is for the person who chose it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FinalizedWithoutAddendum(UploadRejected):
    """A file for a finalized record comes with an addendum that says what it is (the view answers 422)."""

    def __init__(self):
        super().__init__(
            "This record is finalized: a file can be added only with an addendum. Write the addendum "
            "that says what the file is, then add the file to it."
        )


@dataclass
class UploadPlan:
    """What the browser needs to send the bytes."""

    session: UploadSession
    multipart: bool
    part_size: int | None = None
    part_count: int = 1
    post: dict | None = None  # {"url", "fields"} for a single POST
    uploaded_parts: list[dict] = field(default_factory=list)  # [{"part_number", "size", "etag"}] on resume

    def as_json(self) -> dict:
        return {
            "id": self.session.public_id,
            "multipart": self.multipart,
            "part_size": self.part_size,
            "part_count": self.part_count,
            "post": self.post,
            "uploaded_parts": self.uploaded_parts,
            "resumed": bool(self.uploaded_parts),
        }


def audit_file(
    actor: Actor,
    action: str,
    attachment_id: int,
    patient_id: int | None,
    *,
    outcome: str = "success",
    changed_fields: list[str] | None = None,
) -> None:
    """An audit event about one attachment, in the caller's transaction."""
    record_event(
        actor,
        action,
        resource_type="attachment",
        resource_id=attachment_id,
        patient_id=patient_id,
        outcome=outcome,
        changed_fields=changed_fields,
    )


def _storage() -> Storage:
    return get_storage(current_app)


def _require_writer(actor: Actor) -> None:
    if actor.role not in WRITERS:
        raise NotAllowed(actor.role)


def file_limit() -> int:
    return int(current_app.config["ATTACHMENT_MAX_BYTES"])


def tenant_quota(tenant: Tenant) -> int:
    return int(tenant.storage_quota_bytes or current_app.config["TENANT_STORAGE_QUOTA_BYTES"])


def tenant_usage(tenant_id: int) -> int:
    """Bytes the clinic stores (all versions, as stored)."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(AttachmentVersion.stored_size), 0)).where(
                AttachmentVersion.tenant_id == tenant_id
            )
        )
        or 0
    )


def clean_display_name(filename: str) -> str:
    """The name as people see it: no path, no control characters, at most 255 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:MAX_NAME_CHARS] or "file"


def name_key(filename: str) -> str:
    return clean_display_name(filename).casefold()


def _writable_record(actor: Actor, record_id: int, addendum_id: int | None = None) -> MedicalRecord:
    """The record a file goes to. A finalized record takes one only with one of its addenda (the addendum
    says what the file is; the record itself never changes)."""
    record = get_scoped(MedicalRecord, record_id, actor.tenant_id)
    if record is None:
        raise NotFound(record_id)
    if record.is_draft:
        return record
    if addendum_id is None:
        raise FinalizedWithoutAddendum()
    addendum = get_scoped(Addendum, addendum_id, actor.tenant_id)
    if addendum is None or addendum.record_id != record.id:
        raise NotFound(addendum_id)
    return record


def start_upload(
    actor: Actor,
    record_id: int,
    filename: str,
    size: int,
    claimed_type: str | None,
    fingerprint: str,
    replace_attachment_id: int | None = None,
    addendum_id: int | None = None,
) -> UploadPlan:
    """Plan an upload (or find the open one for the same file and record, to resume it).

    A finalized record takes a file only with `addendum_id`, one of its addenda: without one,
    FinalizedWithoutAddendum; another record's or clinic's addendum is a LookupError.
    """
    _require_writer(actor)
    record = _writable_record(actor, record_id, addendum_id)
    display = clean_display_name(filename)
    if replace_attachment_id is not None:
        target = get_scoped(Attachment, replace_attachment_id, actor.tenant_id)
        if target is None or target.record_id != record.id:
            raise NotFound(replace_attachment_id)
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UploadRejected("The browser did not say how big the file is.") from None
    if size <= 0:
        raise UploadRejected(f"{display}: the file is empty.")
    try:
        checks.check_size(size, file_limit())
    except checks.ContentRejected as rejected:
        raise UploadRejected(f"{display}: {rejected.reason}") from None
    tenant = db.session.get(Tenant, actor.tenant_id)
    used, quota = tenant_usage(actor.tenant_id), tenant_quota(tenant)
    if used + size > quota:
        raise UploadRejected(
            f"{display}: the clinic's storage is full ({checks.human_size(used)} of "
            f"{checks.human_size(quota)} used). Ask an administrator for more space."
        )
    fingerprint = (fingerprint or f"{display}|{size}")[:300]
    existing = db.session.scalar(
        scoped(UploadSession, actor.tenant_id).where(
            UploadSession.record_id == record.id,
            UploadSession.user_id == actor.user_id,
            UploadSession.fingerprint == fingerprint,
            UploadSession.status == UPLOADING,
            UploadSession.multipart_id.is_not(None),
        )
    )
    if existing is not None and existing.replace_attachment_id == replace_attachment_id:
        try:
            parts = _storage().list_parts(existing.storage_key, existing.multipart_id)
        except UploadNotFoundError:
            parts = None
        if parts is not None:
            return UploadPlan(
                existing,
                multipart=True,
                part_size=existing.part_size,
                part_count=_part_count(existing.size, existing.part_size),
                uploaded_parts=[
                    {"part_number": p.part_number, "size": p.size, "etag": p.etag} for p in parts
                ],
            )
        existing.status, existing.error = UPLOAD_ABORTED, "The store no longer has this upload."
    storage = _storage()
    storage_class = S3_STORAGE_CLASS if isinstance(storage, S3Storage) else None
    key = make_key(actor.tenant_id, record.id, display)
    session = UploadSession(
        tenant_id=actor.tenant_id,
        public_id=secrets.token_hex(16),
        record_id=record.id,
        user_id=actor.user_id,
        filename=display,
        size=size,
        claimed_type=(claimed_type or "")[:100] or None,
        fingerprint=fingerprint,
        storage_key=key,
        replace_attachment_id=replace_attachment_id,
    )
    # The browser's claimed type is only what the store records until the check; the check decides.
    upload_type = "application/octet-stream"
    if size > MULTIPART_ABOVE_BYTES:
        part_size = max(PART_BYTES, MULTIPART_MIN_PART_BYTES, -(-size // MAX_PARTS))
        session.part_size = part_size
        session.multipart_id = storage.create_multipart_upload(key, upload_type, storage_class=storage_class)
        plan = UploadPlan(
            session, multipart=True, part_size=part_size, part_count=_part_count(size, part_size)
        )
    else:
        post = storage.presigned_post(
            key, upload_type, max_bytes=size, expires_seconds=UPLOAD_URL_SECONDS, storage_class=storage_class
        )
        plan = UploadPlan(session, multipart=False, post=post)
    db.session.add(session)
    record_event(
        actor,
        "attachment.upload_start",
        resource_type="record",
        resource_id=record.id,
        patient_id=record.patient_id,
        changed_fields=["addendum"] if addendum_id is not None else None,
    )
    db.session.commit()
    return plan


def _part_count(size: int, part_size: int | None) -> int:
    return max(1, -(-size // part_size)) if part_size else 1


def get_upload(actor: Actor, public_id: str) -> UploadSession:
    """The actor's own upload session (another person's, or another clinic's, is "not found")."""
    session = db.session.scalar(
        scoped(UploadSession, actor.tenant_id).where(UploadSession.public_id == str(public_id)[:32])
    )
    if session is None or session.user_id != actor.user_id:
        raise NotFound(public_id)
    return session


def part_urls(actor: Actor, public_id: str, part_numbers: list[int]) -> dict[int, str]:
    """Presigned URLs for these parts of an open multipart upload."""
    _require_writer(actor)
    session = get_upload(actor, public_id)
    if session.status != UPLOADING or not session.multipart_id:
        raise UploadRejected("This upload is no longer open.")
    count = _part_count(session.size, session.part_size)
    numbers = sorted({int(n) for n in part_numbers})[:PART_URLS_PER_CALL]
    if any(not 1 <= n <= count for n in numbers):
        raise UploadRejected(f"Part numbers go from 1 to {count}.")
    storage = _storage()
    return {
        n: storage.presigned_upload_part(session.storage_key, session.multipart_id, n, UPLOAD_URL_SECONDS)
        for n in numbers
    }


def uploaded_parts(actor: Actor, public_id: str) -> list[dict]:
    session = get_upload(actor, public_id)
    if session.status != UPLOADING or not session.multipart_id:
        return []
    try:
        parts = _storage().list_parts(session.storage_key, session.multipart_id)
    except UploadNotFoundError:
        return []
    return [{"part_number": p.part_number, "size": p.size, "etag": p.etag} for p in parts]


def abort_upload(actor: Actor, public_id: str) -> None:
    """Cancel: the store drops what it has; nothing becomes visible."""
    session = get_upload(actor, public_id)
    if session.status != UPLOADING:
        return
    storage = _storage()
    if session.multipart_id:
        storage.abort_multipart_upload(session.storage_key, session.multipart_id)
    storage.delete(session.storage_key)
    session.status = UPLOAD_ABORTED
    db.session.commit()


def complete_upload(
    actor: Actor, public_id: str, parts: list[tuple[int, str]] | None = None
) -> AttachmentVersion:
    """Join the parts, check the file, store it as a version. Raises UploadRejected with the reason (the
    bytes are deleted and the session remembers why)."""
    _require_writer(actor)
    session = get_upload(actor, public_id)
    if session.status == UPLOAD_DONE and session.version is not None:
        return session.version  # a retried "complete" after a lost answer
    if not _claim_for_completion(session):
        db.session.refresh(session)
        if session.status == UPLOAD_DONE and session.version is not None:
            return session.version  # the other request finished meanwhile
        if session.status == UPLOAD_COMPLETING:
            raise UploadBusy()
        raise UploadRejected(session.error or "This upload is no longer open.")
    storage = _storage()
    try:
        if session.multipart_id:
            expected = _part_count(session.size, session.part_size)
            given = sorted((int(n), str(etag).strip('"')) for n, etag in (parts or []))
            if [n for n, _ in given] != list(range(1, expected + 1)):
                raise UploadRejected(f"The upload is missing parts ({len(given)} of {expected} arrived).")
            try:
                storage.complete_multipart_upload(session.storage_key, session.multipart_id, given)
            except (ValueError, UploadNotFoundError) as error:
                raise UploadRejected(f"The parts did not arrive intact ({error}). Try again.") from None
        stored = storage.head(session.storage_key)
        if stored is None:
            raise UploadRejected("Nothing arrived. Try again.")
        if stored.size != session.size:
            raise UploadRejected(
                f"{session.filename}: {checks.human_size(stored.size)} arrived, "
                f"{checks.human_size(session.size)} were expected."
            )
        version = _check_and_keep(actor, session, storage)
    except UploadRejected as rejected:
        db.session.rollback()
        _reject(actor, session, storage, rejected.reason)
        raise
    return version


def _claim_for_completion(session: UploadSession) -> bool:
    """Take the upload for this request with one guarded UPDATE, committed at once: of two "complete"
    requests for one upload only one checks the file, keeps it or deletes it (the other gets 409). A claim
    older than COMPLETION_STALE_AFTER (its process died) may be taken again."""
    stale = utcnow() - COMPLETION_STALE_AFTER
    claimed = db.session.execute(
        update(UploadSession)
        .where(
            UploadSession.id == session.id,
            or_(
                UploadSession.status == UPLOADING,
                (UploadSession.status == UPLOAD_COMPLETING) & (UploadSession.updated_at < stale),
            ),
        )
        .values(status=UPLOAD_COMPLETING, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed:
        db.session.refresh(session)
    return bool(claimed)


def _reject(actor: Actor, session: UploadSession, storage: Storage, reason: str) -> None:
    if session.multipart_id:
        storage.abort_multipart_upload(session.storage_key, session.multipart_id)
    storage.delete(session.storage_key)
    session.status, session.error = UPLOAD_REJECTED, reason[:500]
    record = get_scoped(MedicalRecord, session.record_id, session.tenant_id)
    record_event(
        actor,
        "attachment.rejected",
        resource_type="record",
        resource_id=session.record_id,
        patient_id=record.patient_id if record else None,
        outcome="failure",
    )
    db.session.commit()


def _check_and_keep(actor: Actor, session: UploadSession, storage: Storage) -> AttachmentVersion:
    """Sniff, hash and maybe compress what arrived; add the version. The caller rejects on UploadRejected."""
    with storage.open_stream(session.storage_key) as source:
        head = _read_up_to(source, checks.HEAD_BYTES)
    try:
        sniffed = checks.sniff(head, session.filename)
    except checks.ContentRejected as rejected:
        raise UploadRejected(f"{session.filename}: {rejected.reason}") from None
    key, size, sha256, stored_sha256, stored_size, compression = _store_checked(
        storage, session, sniffed, head
    )
    stored = storage.head(key)
    # From here on, one upload at a time per record: the guarded UPDATE takes the record's row (the write
    # lock on SQLite), so two files of one name become one attachment with two versions, numbered from
    # what is stored now (never a stale max() + 1).
    db.session.execute(
        update(MedicalRecord)
        .where(MedicalRecord.id == session.record_id)
        .values(attachment_count=MedicalRecord.attachment_count)
        .execution_options(synchronize_session=False)
    )
    record = get_scoped(MedicalRecord, session.record_id, session.tenant_id)
    attachment = _attachment_for(actor, session, record)
    number = (
        db.session.scalar(
            select(func.max(AttachmentVersion.number)).where(
                AttachmentVersion.tenant_id == actor.tenant_id,
                AttachmentVersion.attachment_id == attachment.id,
            )
        )
        or 0
    ) + 1
    version = AttachmentVersion(
        tenant_id=actor.tenant_id,
        attachment=attachment,
        number=number,
        storage_key=key,
        original_name=session.filename,
        kind=sniffed.kind,
        content_type=sniffed.content_type,
        size=size,
        stored_size=stored_size,
        compression=compression,
        sha256=sha256,
        stored_sha256=stored_sha256,
        stored_etag=stored.etag if stored else None,
        storage_class=stored.storage_class if stored else "STANDARD",
        scan_status=SCAN_PENDING if current_app.config.get("CLAMD_HOST") else SCAN_NOT_SCANNED,
        preview_status=PREVIEW_PENDING,
        uploaded_by_id=actor.user_id,
    )
    db.session.add(version)
    db.session.flush()
    attachment.current_version_id = version.id
    session.status, session.version_id = UPLOAD_DONE, version.id
    _recount(record)
    audit_file(
        actor,
        "attachment.upload",
        attachment.id,
        record.patient_id,
        changed_fields=["version"] if number > 1 else None,
    )
    db.session.commit()
    _after_upload(version)
    return version


def queue_previews(version: AttachmentVersion) -> None:
    """Queue the preview job of a version that may be opened (scanned clean, or no scanner)."""

    if version.openable and version.preview_status == PREVIEW_PENDING:
        enqueue("files.preview", version.id, tenant_id=version.tenant_id, label="Preview")


def _after_upload(version: AttachmentVersion) -> None:
    """Queue the scan (when clamd is configured) and the preview."""

    if version.scan_status == SCAN_PENDING:
        enqueue("files.scan", version.id, tenant_id=version.tenant_id, label="Virus scan")
    # Previews wait for a clean scan: the scan job queues them (processing.scan_version).
    queue_previews(version)


def _recount(record: MedicalRecord) -> None:
    record.attachment_count = db.session.scalar(
        select(func.count())
        .select_from(Attachment)
        .where(Attachment.tenant_id == record.tenant_id, Attachment.record_id == record.id)
    )


def _attachment_for(actor: Actor, session: UploadSession, record: MedicalRecord) -> Attachment:
    """The replaced attachment, the one of the same name on the record, or a new one."""
    if session.replace_attachment_id:
        attachment = get_scoped(Attachment, session.replace_attachment_id, actor.tenant_id)
        if attachment is not None and attachment.record_id == record.id:
            return attachment
    key = name_key(session.filename)
    attachment = db.session.scalar(
        scoped(Attachment, actor.tenant_id).where(
            Attachment.record_id == record.id, Attachment.name_key == key
        )
    )
    if attachment is None:
        attachment = Attachment(
            tenant_id=actor.tenant_id,
            record_id=record.id,
            patient_id=record.patient_id,
            filename=session.filename,
            name_key=key,
            created_by_id=actor.user_id,
        )
        db.session.add(attachment)
        db.session.flush()
    return attachment


def _read_up_to(source: IO[bytes], count: int) -> bytes:
    chunks, remaining = [], count
    while remaining > 0:
        chunk = source.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _store_checked(storage: Storage, session: UploadSession, sniffed, head: bytes):
    """Hash the uploaded object; for text-like kinds, store a gzip copy instead when it saves space.

    Returns (key, size, sha256, stored_sha256, stored_size, compression). Never holds the file in memory:
    the compressed copy goes through a temporary file.
    """
    key = session.storage_key
    if not checks.should_compress(sniffed.kind, head):
        with storage.open_stream(key) as source, open(os.devnull, "wb") as sink:
            size, sha256 = checks.hashing_copy(source, sink)
        return key, size, sha256, sha256, size, None
    with tempfile.TemporaryFile() as packed:
        with storage.open_stream(key) as source:
            size, packed_size, sha256, packed_sha256 = checks.gzip_stream(source, packed)
        if not checks.worth_keeping(size, packed_size):
            return key, size, sha256, sha256, size, None
        packed.seek(0)
        gz_key = f"{key}.gz"
        storage_class = S3_STORAGE_CLASS if isinstance(storage, S3Storage) else None
        storage.put_stream(
            gz_key, packed, sniffed.content_type, storage_class=storage_class, content_encoding="gzip"
        )
    storage.delete(key)  # a missing key is not an error
    return gz_key, size, sha256, packed_sha256, packed_size, "gzip"
