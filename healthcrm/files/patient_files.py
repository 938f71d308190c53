"""A patient's own documents: files kept on the patient (not on a visit record), uploaded by the patient
from the portal (also as a message's attachment) or by staff, through the same checks, scan, versions and
quota as record attachments.

THE INTERFACE IS FIXED (the messages helper calls it); the documents helper implements it.

A patient document is an `Attachment` with no record. The patient sees their own uploads and the files
staff marked "visible to patient"; staff (attachment.read / attachment.write) see all of them on the
patient page. A second file of the same name is a new version of that document, except that a patient's
upload never becomes a version of a staff document (it gets a name of its own: "Letter (2).pdf").
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ..accounts.models import Tenant, User
from ..accounts.roles import PATIENT
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..errors import DomainError, NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..portal import events
from ..tenancy import get_scoped, scoped
from . import checks
from .models import (
    PREVIEW_PENDING,
    SCAN_NOT_SCANNED,
    SCAN_PENDING,
    SOURCE_MESSAGE,
    SOURCE_PORTAL,
    SOURCE_STAFF,
    Attachment,
    AttachmentVersion,
)
from .services import Delivery, deliver_version
from .storage import S3Storage, get_storage, make_key
from .uploads import (
    S3_STORAGE_CLASS,
    UploadRejected,
    _after_upload,
    audit_file,
    clean_display_name,
    file_limit,
    name_key,
    tenant_quota,
    tenant_usage,
)

PORTAL = SOURCE_PORTAL  # the patient's documents page
MESSAGE = SOURCE_MESSAGE  # attached to a message (the messages area links it)
STAFF = SOURCE_STAFF  # staff, on the patient page
PATIENT_SOURCES = frozenset({PORTAL, MESSAGE})

DOCUMENT_UPLOADED = "document.uploaded"  # the portal event of a patient's upload on the documents page
COPY_CHUNK_BYTES = checks.STREAM_CHUNK_BYTES
SAME_NAME_TRIES = 20


class DocumentRejected(UploadRejected, DomainError):
    """The file cannot be stored; `reason` (= `message`) says why, for the person who chose it. Nothing
    was stored. An `UploadRejected` like a record upload's, and a `DomainError` (422) for forms."""

    def __init__(self, reason: str):
        UploadRejected.__init__(self, reason)
        self.message = reason
        self.field = "file"


class DocumentTooLarge(DocumentRejected):
    status = 413


# --- who may -----------------------------------------------------------------------------------------------


def _own_patient_id(actor: Actor) -> int | None:
    user = get_scoped(User, actor.user_id, actor.tenant_id) if actor.user_id else None
    return user.patient_id if user is not None else None


def _patient_for(actor: Actor, patient_id: int, permission: str) -> Patient:
    """The patient whose documents the actor reaches: a patient only their own (another's id is "not
    found"), staff any of the clinic's with `permission`."""
    if actor.role == PATIENT:
        if _own_patient_id(actor) != patient_id:
            raise NotFound(patient_id)
    else:
        require(actor, permission)
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    return patient


# --- storing -----------------------------------------------------------------------------------------------


def store_patient_file(actor: Actor, patient_id: int, filename: str, stream: IO[bytes], *, source: str):
    """Check, scan and store one file as a new patient document (an `Attachment` with no record) and return
    it. A patient may only store into their own file (`actor` is theirs; `patient_id` from the session).
    Raises the files area's domain errors (too large, a type not accepted, over quota) with a clear message,
    and changes nothing then. Audited in the same transaction."""
    # Commits (the document stands on its own, as a record upload does), then queues the scan and the
    # previews. `source` PORTAL also raises the "document.uploaded" portal event in that transaction.
    by_patient = actor.role == PATIENT
    # Staff attach files to their replies too (MESSAGE); only patients use the portal page (PORTAL).
    if source not in (PATIENT_SOURCES if by_patient else {STAFF, MESSAGE}):
        raise ValueError(f"source {source!r} is not for a {actor.role}")
    # A reply's attachment needs what answering the thread needs; a document on the file, what files need.
    permission = "care.inbox" if source == MESSAGE and not by_patient else "attachment.write"
    patient = _patient_for(actor, patient_id, permission)
    display = clean_display_name(filename)
    storage = get_storage(current_app)
    storage_class = S3_STORAGE_CLASS if isinstance(storage, S3Storage) else None
    with tempfile.TemporaryFile() as spool:
        size = _spool(stream, spool, display)
        try:
            checks.check_size(size, file_limit())
        except checks.ContentRejected as rejected:
            raise DocumentRejected(f"{display}: {rejected.reason}") from None
        _check_quota(actor, display, size, by_patient)
        spool.seek(0)
        head = spool.read(checks.HEAD_BYTES)
        try:
            sniffed = checks.sniff(head, display)
        except checks.ContentRejected as rejected:
            raise DocumentRejected(f"{display}: {rejected.reason}") from None
        key = make_key(actor.tenant_id, f"patient-{patient.id}", display)
        with _packed(spool, sniffed.kind, head) as (body, sha256, stored_sha256, stored_size, compression):
            if compression:
                key += ".gz"
            put = storage.put_stream(
                key, body, sniffed.content_type, storage_class=storage_class, content_encoding=compression
            )
    try:
        attachment, number = _document_for(actor, patient, display, source)
        version = AttachmentVersion(
            tenant_id=actor.tenant_id,
            attachment=attachment,
            number=number,
            storage_key=key,
            original_name=display,
            kind=sniffed.kind,
            content_type=sniffed.content_type,
            size=size,
            stored_size=stored_size,
            compression=compression,
            sha256=sha256,
            stored_sha256=stored_sha256,
            stored_etag=put.etag,
            storage_class=put.storage_class or "STANDARD",
            scan_status=SCAN_PENDING if current_app.config.get("CLAMD_HOST") else SCAN_NOT_SCANNED,
            preview_status=PREVIEW_PENDING,
            uploaded_by_id=actor.user_id,
        )
        db.session.add(version)
        db.session.flush()
        attachment.current_version_id = version.id
        attachment.updated_at = utcnow()
        audit_file(
            actor,
            "attachment.upload",
            attachment.id,
            patient.id,
            changed_fields=["version"] if number > 1 else None,
        )
        if source == PORTAL:
            events.raise_event(
                actor,
                DOCUMENT_UPLOADED,
                patient_id=patient.id,
                subject=("attachment", attachment.id),
                version_id=version.id,
            )
        events.commit()
    except Exception:
        db.session.rollback()
        events.discard_pending()
        storage.delete(key)  # nothing points at it: the rows were never committed
        raise
    _after_upload(version)
    return attachment


def _spool(stream: IO[bytes], spool: IO[bytes], display: str) -> int:
    """Copy the upload into a temporary file, refusing it as soon as it passes the limit."""
    limit, size = file_limit(), 0
    while chunk := stream.read(COPY_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise DocumentTooLarge(
                f"{display}: the file is over the limit of {checks.human_size(limit)}; choose a smaller one."
            )
        spool.write(chunk)
    return size


def _check_quota(actor: Actor, display: str, size: int, by_patient: bool) -> None:
    tenant = db.session.get(Tenant, actor.tenant_id)
    used, quota = tenant_usage(actor.tenant_id), tenant_quota(tenant)
    if used + size <= quota:
        return
    if by_patient:
        raise DocumentRejected(
            f"{display}: the clinic cannot take more files right now. Please call the clinic, or try again "
            "later."
        )
    raise DocumentRejected(
        f"{display}: the clinic's storage is full ({checks.human_size(used)} of "
        f"{checks.human_size(quota)} used). Ask an administrator for more space."
    )


@contextlib.contextmanager
def _packed(spool: IO[bytes], kind: str, head: bytes):
    """The bytes to store (the file, or its gzip copy when that saves space) with (sha256 of the file,
    sha256 of the stored bytes, stored size, compression)."""
    spool.seek(0)
    if checks.should_compress(kind, head):
        with tempfile.TemporaryFile() as packed:
            size, packed_size, sha256, packed_sha256 = checks.gzip_stream(spool, packed)
            if checks.worth_keeping(size, packed_size):
                packed.seek(0)
                yield packed, sha256, packed_sha256, packed_size, "gzip"
                return
    spool.seek(0)
    with open(os.devnull, "wb") as sink:
        size, sha256 = checks.hashing_copy(spool, sink)
    spool.seek(0)
    yield spool, sha256, sha256, size, None


def _document_for(actor: Actor, patient: Patient, display: str, source: str) -> tuple[Attachment, int]:
    """The document this file becomes a version of, or a new one, and the version's number. The guarded
    UPDATE takes the document's row (the write lock on SQLite) so two uploads of one name number their
    versions from what is stored, never from a stale max() + 1."""
    by_patient = source in PATIENT_SOURCES
    name = display
    for attempt in range(1, SAME_NAME_TRIES + 1):
        existing = db.session.scalar(
            scoped(Attachment, actor.tenant_id).where(
                Attachment.patient_id == patient.id,
                Attachment.record_id.is_(None),
                Attachment.name_key == name_key(name),
            )
        )
        if existing is not None and by_patient and not existing.uploaded_by_patient:
            # A patient's file never becomes a version of the clinic's document (hidden, or the clinic's
            # letter): it keeps a name of its own.
            name = _numbered(display, attempt + 1)
            continue
        if existing is None:
            try:
                with db.session.begin_nested():
                    existing = Attachment(
                        tenant_id=actor.tenant_id,
                        record_id=None,
                        patient_id=patient.id,
                        filename=name,
                        name_key=name_key(name),
                        created_by_id=actor.user_id,
                        source=source,
                        visible_to_patient=by_patient,
                    )
                    db.session.add(existing)
            except IntegrityError:
                continue  # another upload of this name made it meanwhile: add a version to that one
        db.session.execute(
            update(Attachment)
            .where(Attachment.id == existing.id)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        number = (
            db.session.scalar(
                select(func.max(AttachmentVersion.number)).where(
                    AttachmentVersion.tenant_id == actor.tenant_id,
                    AttachmentVersion.attachment_id == existing.id,
                )
            )
            or 0
        ) + 1
        return existing, number
    raise DocumentRejected(f"{display}: there are too many documents of this name; rename the file.")


def _numbered(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    return f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"


# --- reading -----------------------------------------------------------------------------------------------


def _shown_to(actor: Actor, query):
    """Patients see their own uploads and what staff marked visible."""
    if actor.role == PATIENT:
        return query.where(Attachment.visible_to_patient.is_(True))
    return query


def patient_documents(actor: Actor, patient_id: int, *, audited: bool = False) -> list[Attachment]:
    """The patient's documents as the actor sees them, newest first, with their current versions. Audited
    (and committed) with `audited`, for a page of their own; the patient page's section is not (the page's
    read is audited already)."""
    patient = _patient_for(actor, patient_id, "attachment.read")
    if audited:
        record_event(
            actor, "attachment.list", resource_type="patient", resource_id=patient.id, patient_id=patient.id
        )
        db.session.commit()
    query = scoped(Attachment, actor.tenant_id).where(
        Attachment.patient_id == patient.id, Attachment.record_id.is_(None)
    )
    return list(
        db.session.scalars(
            _shown_to(actor, query)
            .options(
                selectinload(Attachment.current_version).selectinload(AttachmentVersion.uploaded_by),
                selectinload(Attachment.versions),
            )
            .order_by(Attachment.updated_at.desc(), Attachment.id.desc())
        )
    )


def get_patient_document(actor: Actor, patient_id: int, attachment_id: int) -> Attachment:
    """One of the patient's documents the actor may see; anything else (a record's file, another patient's
    or clinic's, a staff file not visible to the patient) is NotFound."""
    patient = _patient_for(actor, patient_id, "attachment.read")
    query = scoped(Attachment, actor.tenant_id).where(
        Attachment.id == attachment_id,
        Attachment.patient_id == patient.id,
        Attachment.record_id.is_(None),
    )
    attachment = db.session.scalar(_shown_to(actor, query))
    if attachment is None:
        raise NotFound(attachment_id)
    return attachment


def open_patient_document(actor: Actor, patient_id: int, attachment_id: int, *, inline: bool) -> Delivery:
    """The current version of a document, checked (scan, checksum), counted and audited. Raises
    FileNotOpenable (pending scan, quarantined), ChecksumMismatch, NotFound."""
    attachment = get_patient_document(actor, patient_id, attachment_id)
    version = attachment.current_version
    if version is None:
        raise NotFound(attachment_id)
    return deliver_version(actor, version, inline=inline)


def set_visible_to_patient(actor: Actor, patient_id: int, attachment_id: int, visible: bool) -> Attachment:
    """Show a document to the patient or hide it again (staff with attachment.write), audited."""
    require(actor, "attachment.write")
    attachment = get_patient_document(actor, patient_id, attachment_id)
    if attachment.visible_to_patient != visible:
        attachment.visible_to_patient = visible
        audit_file(
            actor,
            "attachment.show_to_patient" if visible else "attachment.hide_from_patient",
            attachment.id,
            attachment.patient_id,
            changed_fields=["visible_to_patient"],
        )
    db.session.commit()
    return attachment
