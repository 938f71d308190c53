"""Attachments: list, open (view or download), versions (restore, compare), bulk delete and move, zip.

Who may: clinical readers (doctors, nurses, coaches, admins) open files; writers (doctors, nurses, admins)
upload, restore, delete and move; front desk sees none of it. Drafts' files can be deleted or moved; a
finalized record keeps every version forever. Every open is checked against the SHA-256 taken at upload,
counted in the file's access log and audited.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..errors import Conflict, DomainError, NotFound
from ..extensions import db
from ..jobs.queue import enqueue
from ..records.models import DRAFT, MedicalRecord
from ..records.services import READERS, WRITERS, NotAllowed
from ..tenancy import get_scoped, scoped
from . import checks
from .models import (
    ACCESS_DOWNLOAD,
    ACCESS_VIEW,
    SCAN_INFECTED,
    UPLOADING,
    Attachment,
    AttachmentVersion,
    FileAccess,
    UploadSession,
)
from .storage import (
    LocalStorage,
    ObjectArchivedError,
    S3Storage,
    Storage,
    get_storage,
    make_key,
)
from .uploads import S3_STORAGE_CLASS, _recount, audit_file

# Kinds a browser shows itself, and the type they are served as (text as text/plain: never HTML).
INLINE_TYPES = {
    "pdf": "application/pdf",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "text": "text/plain; charset=utf-8",
    "csv": "text/plain; charset=utf-8",
}
DOWNLOAD_URL_SECONDS = 300  # well under the one-hour cap: the browser follows it at once
CHUNK_BYTES = 1024 * 1024
DIFF_MAX_BYTES = 512 * 1024
ZIP_JOB = "files.zip"
ZIP_JOB_LABEL = "Zip of files"


class FileNotOpenable(Conflict):
    """The version exists but cannot be opened now (pending scan, infected); `reason` says why. Answered
    409 by the app-wide handler, with this title and the reason as the page's text."""

    title = "This file cannot be opened now"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FileArchived(FileNotOpenable):
    """The version's object is in an archive class (GLACIER, DEEP_ARCHIVE) with no restored copy: it opens
    again once retrieved (healthcrm/storage_cost/restores.py). The views send the person to the file's
    "archived" page; anywhere else it is the app-wide 409 page with this title."""

    title = "This file is archived"

    def __init__(self, version: AttachmentVersion):
        super().__init__(
            "This file is in the archive: it can be retrieved from its page, and opens again once it is."
        )
        self.version = version


class ChecksumMismatch(Exception):
    """The stored bytes are not the bytes that were uploaded: nothing is sent."""


class FileActionError(DomainError):
    """A bulk action that cannot be done; `message` is for the user."""


@dataclass
class Delivery:
    """How to hand a version to the browser: a redirect (S3) or a stream (local)."""

    version: AttachmentVersion
    filename: str
    content_type: str
    inline: bool
    redirect_url: str | None = None
    chunks: Iterator[bytes] | None = None
    size: int | None = None


def _storage() -> Storage:
    return get_storage(current_app)


def _require(actor: Actor, roles: frozenset[str]) -> None:
    if actor.role not in roles:
        raise NotAllowed(actor.role)


def key_owner(attachment: Attachment) -> str:
    """The folder of an attachment's objects under its clinic: its record's id, or `patient-<id>` for a
    patient document (which has no record)."""
    if attachment.record_id is not None:
        return str(attachment.record_id)
    return f"patient-{attachment.patient_id}"


def _record(actor: Actor, record_id: int) -> MedicalRecord:
    record = get_scoped(MedicalRecord, record_id, actor.tenant_id)
    if record is None:
        raise NotFound(record_id)
    return record


def record_attachments(actor: Actor, record_id: int) -> list[Attachment]:
    """The record's attachments, newest first, with their versions (no audit: the record page is)."""
    _require(actor, READERS)
    record = _record(actor, record_id)
    return list(
        db.session.scalars(
            scoped(Attachment, actor.tenant_id)
            .where(Attachment.record_id == record.id)
            .options(selectinload(Attachment.versions).selectinload(AttachmentVersion.uploaded_by))
            .order_by(Attachment.updated_at.desc(), Attachment.id.desc())
        )
    )


def open_uploads(actor: Actor, record_id: int) -> list[UploadSession]:
    """The actor's unfinished uploads on the record (resumable after a reload)."""

    return list(
        db.session.scalars(
            scoped(UploadSession, actor.tenant_id).where(
                UploadSession.record_id == record_id,
                UploadSession.user_id == actor.user_id,
                UploadSession.status == UPLOADING,
                UploadSession.multipart_id.is_not(None),
                UploadSession.created_at > utcnow() - timedelta(days=7),
            )
        )
    )


def get_attachment(actor: Actor, attachment_id: int) -> Attachment:
    _require(actor, READERS)
    attachment = get_scoped(Attachment, attachment_id, actor.tenant_id)
    if attachment is None:
        raise NotFound(attachment_id)
    return attachment


def show_attachment(actor: Actor, attachment_id: int) -> Attachment:
    """The attachment for its page (its name, versions, who uploaded them), audited as a read."""
    attachment = get_attachment(actor, attachment_id)
    audit_file(actor, "attachment.show", attachment.id, attachment.patient_id)
    db.session.commit()
    return attachment


def get_version(actor: Actor, attachment_id: int, version_id: int | None = None) -> AttachmentVersion:
    """A version of the clinic's attachment (the current one without `version_id`)."""
    attachment = get_attachment(actor, attachment_id)
    version_id = version_id or attachment.current_version_id
    version = get_scoped(AttachmentVersion, version_id, actor.tenant_id)
    if version is None or version.attachment_id != attachment.id:
        raise NotFound(version_id)
    return version


def _openable(version: AttachmentVersion) -> None:
    if version.scan_status == SCAN_INFECTED:
        raise FileNotOpenable(
            f"This file was found infected ({version.scan_signature}) and is quarantined. "
            "It cannot be opened."
        )
    if not version.openable:
        raise FileNotOpenable("This file is waiting for its virus scan. Try again in a minute.")


def log_access(actor: Actor, version: AttachmentVersion, action: str) -> None:
    """Count and audit one view or download (in the caller's transaction)."""
    db.session.add(
        FileAccess(
            tenant_id=version.tenant_id,
            attachment_id=version.attachment_id,
            version_id=version.id,
            user_id=actor.user_id,
            action=action,
            ip=actor.ip,
            user_agent=(actor.user_agent or "")[:300] or None,
        )
    )
    audit_file(actor, f"attachment.{action}", version.attachment_id, version.attachment.patient_id)


def open_version(actor: Actor, attachment_id: int, version_id: int | None, *, inline: bool) -> Delivery:
    """Verify a version against its checksum and hand it out (inline only for kinds browsers show
    safely). Raises FileNotOpenable, ChecksumMismatch, NotFound."""
    return deliver_version(actor, get_version(actor, attachment_id, version_id), inline=inline)


def deliver_version(actor: Actor, version: AttachmentVersion, *, inline: bool) -> Delivery:
    """Hand out a version the caller has already found the actor may open (open_version for staff; the
    portal's documents for the patient): scan state and checksum checked, counted, audited, committed."""
    _openable(version)
    inline = inline and version.kind in INLINE_TYPES
    content_type = INLINE_TYPES[version.kind] if inline else version.content_type
    storage = _storage()
    try:
        _verify(storage, version)
    except ChecksumMismatch:
        db.session.rollback()
        audit_file(
            actor,
            "attachment.checksum_mismatch",
            version.attachment_id,
            version.attachment.patient_id,
            outcome="failure",
        )
        db.session.commit()
        raise
    log_access(actor, version, ACCESS_VIEW if inline else ACCESS_DOWNLOAD)
    db.session.commit()
    delivery = Delivery(version, version.original_name, content_type, inline, size=version.size)
    if isinstance(storage, S3Storage):
        delivery.redirect_url = storage.presigned_get(
            version.storage_key,
            DOWNLOAD_URL_SECONDS,
            download_name=version.original_name,
            inline=inline,
            content_type=content_type,
        )
    else:
        delivery.chunks = read_version(version)
    return delivery


def read_version(version: AttachmentVersion) -> Iterator[bytes]:
    """The file's own bytes in chunks (decompressed when stored compressed)."""
    storage = _storage()

    def chunks() -> Iterator[bytes]:
        try:
            opened = storage.open_stream(version.storage_key)
        except ObjectArchivedError:
            raise FileArchived(version) from None
        with opened as stored:
            source = checks.gunzip_stream(stored) if version.compression == "gzip" else stored
            try:
                while chunk := source.read(CHUNK_BYTES):
                    yield chunk
            finally:
                if source is not stored:
                    source.close()

    return chunks()


def _verify(storage: Storage, version: AttachmentVersion) -> None:
    """Local: the stored bytes hash to the SHA-256 taken at upload. S3: the object still has the size and
    ETag recorded then (S3 checks its own bytes; reading a whole object back per download would double
    the transfer)."""
    if isinstance(storage, LocalStorage):
        try:
            opened = storage.open_stream(version.storage_key)
        except ObjectArchivedError:
            raise FileArchived(version) from None
        with opened as stored, open(os.devnull, "wb") as sink:
            _size, sha256 = checks.hashing_copy(stored, sink)
        if sha256 != version.stored_sha256:
            raise ChecksumMismatch(version.id)
        return
    stored = storage.head(version.storage_key)
    if stored is not None and not stored.readable:
        # A presigned GET of an archived object answers InvalidObjectState to the browser: never hand one out.
        raise FileArchived(version)
    if (
        stored is None
        or stored.size != version.stored_size
        or (version.stored_etag and stored.etag != version.stored_etag)
    ):
        raise ChecksumMismatch(version.id)


def preview_bytes(actor: Actor, attachment_id: int, version_id: int, which: str) -> bytes | None:
    """A version's thumbnail ("thumb") or DICOM image ("image") PNG, None when there is none. A preview
    shows the file's content, so sending one is audited (not counted as a view of the file)."""
    version = get_version(actor, attachment_id, version_id)
    _openable(version)
    key = version.preview_key if which == "thumb" else version.image_key
    if not key:
        return None
    try:
        with _storage().open_stream(key) as stored:
            data = stored.read()
    except ObjectArchivedError:
        # A derived image the lifecycle archived with the file: the list shows the file's kind instead.
        return None
    audit_file(actor, "attachment.preview", version.attachment_id, version.attachment.patient_id)
    db.session.commit()
    return data


# --- versions ------------------------------------------------------------------------------------------


def restore_version(actor: Actor, attachment_id: int, version_id: int) -> AttachmentVersion:
    """Make an old version current again as a new version (a copy; nothing is deleted)."""
    _require(actor, WRITERS)
    old = get_version(actor, attachment_id, version_id)
    _openable(old)
    attachment = old.attachment
    storage = _storage()
    key = make_key(actor.tenant_id, key_owner(attachment), old.original_name)
    if old.compression == "gzip":
        key += ".gz"
    storage_class = S3_STORAGE_CLASS if isinstance(storage, S3Storage) else None
    try:
        opened = storage.open_stream(old.storage_key)
    except ObjectArchivedError:
        raise FileArchived(old) from None
    with opened as stored:
        copied = storage.put_stream(
            key, stored, old.content_type, storage_class=storage_class, content_encoding=old.compression
        )
    number = max(v.number for v in attachment.versions) + 1
    version = AttachmentVersion(
        tenant_id=actor.tenant_id,
        attachment=attachment,
        number=number,
        storage_key=key,
        original_name=old.original_name,
        kind=old.kind,
        content_type=old.content_type,
        size=old.size,
        stored_size=old.stored_size,
        compression=old.compression,
        sha256=old.sha256,
        stored_sha256=old.stored_sha256,
        stored_etag=copied.etag,
        storage_class=copied.storage_class,
        scan_status=old.scan_status,
        scan_signature=old.scan_signature,
        scanned_at=old.scanned_at,
        preview_status=old.preview_status,
        preview_key=old.preview_key,
        image_key=old.image_key,
        details=old.details,
        restored_from_id=old.id,
        uploaded_by_id=actor.user_id,
    )
    db.session.add(version)
    db.session.flush()
    attachment.current_version_id = version.id
    attachment.updated_at = utcnow()
    audit_file(actor, "attachment.restore", attachment.id, attachment.patient_id, changed_fields=["version"])
    db.session.commit()
    return version


@dataclass
class Comparison:
    left: AttachmentVersion
    right: AttachmentVersion
    diff: list[tuple[str, str]] | None  # (kind: "same"/"added"/"removed"/"info", line) for text files
    note: str = ""


def compare_versions(actor: Actor, attachment_id: int, left_id: int, right_id: int) -> Comparison:
    """Two versions side by side: metadata always, a line diff for text files (audited as a view)."""
    left = get_version(actor, attachment_id, left_id)
    right = get_version(actor, attachment_id, right_id)
    diff, note = None, ""
    if left.kind in ("text", "csv") and right.kind in ("text", "csv"):
        if max(left.size, right.size) > DIFF_MAX_BYTES:
            note = f"Too big to compare line by line (over {checks.human_size(DIFF_MAX_BYTES)})."
        else:
            for version in (left, right):
                _openable(version)
            a, b = (_text(version) for version in (left, right))
            diff = _diff_lines(a, b)
    for version in (left, right):
        if version.openable:
            log_access(actor, version, ACCESS_VIEW)
    db.session.commit()
    return Comparison(left, right, diff, note)


def _text(version: AttachmentVersion) -> list[str]:
    return b"".join(read_version(version)).decode("utf-8", "replace").splitlines()


def _diff_lines(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for line in difflib.unified_diff(a, b, "older", "newer", lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(("info", line))
        elif line.startswith("+"):
            lines.append(("added", line[1:]))
        elif line.startswith("-"):
            lines.append(("removed", line[1:]))
        else:
            lines.append(("same", line[1:]))
    return lines or [("info", "The two versions have the same text.")]


# --- bulk ----------------------------------------------------------------------------------------------


def _chosen(actor: Actor, record: MedicalRecord, attachment_ids: list[int]) -> list[Attachment]:
    ids = {int(i) for i in attachment_ids}
    if not ids:
        raise FileActionError("Choose at least one file.")
    chosen = list(
        db.session.scalars(
            scoped(Attachment, actor.tenant_id).where(
                Attachment.record_id == record.id, Attachment.id.in_(ids)
            )
        )
    )
    if len(chosen) != len(ids):
        raise NotFound(attachment_ids)
    return chosen


def move_targets(actor: Actor, record_id: int) -> list[MedicalRecord]:
    """The patient's other draft records: where a draft's files may move."""
    _require(actor, WRITERS)
    record = _record(actor, record_id)
    return list(
        db.session.scalars(
            scoped(MedicalRecord, actor.tenant_id)
            .where(
                MedicalRecord.patient_id == record.patient_id,
                MedicalRecord.id != record.id,
                MedicalRecord.status == DRAFT,
            )
            .order_by(MedicalRecord.visit_at.desc())
        )
    )


def delete_files(actor: Actor, record_id: int, attachment_ids: list[int]) -> int:
    """Delete a draft's files with every version (a finalized record keeps all its files)."""
    _require(actor, WRITERS)
    record = _record(actor, record_id)
    if not record.is_draft:
        raise FileActionError("This record is finalized: its files are kept for good.")
    chosen = _chosen(actor, record, attachment_ids)
    keys = []
    for attachment in chosen:
        for version in attachment.versions:
            keys += [k for k in (version.storage_key, version.preview_key, version.image_key) if k]
        db.session.execute(delete(FileAccess).where(FileAccess.attachment_id == attachment.id))
        db.session.execute(
            UploadSession.__table__.update()
            .where(UploadSession.replace_attachment_id == attachment.id)
            .values(replace_attachment_id=None)
        )
        db.session.execute(
            UploadSession.__table__.update()
            .where(UploadSession.version_id.in_([v.id for v in attachment.versions]))
            .values(version_id=None)
        )
        attachment.current_version_id = None
        db.session.flush()
        audit_file(actor, "attachment.delete", attachment.id, attachment.patient_id)
        db.session.delete(attachment)
    db.session.flush()
    _recount(record)
    db.session.commit()
    # The rows are gone for good first; an object left behind by a crash here is only unreachable bytes.
    storage = _storage()
    for key in set(keys):
        storage.delete(key)
    return len(chosen)


def move_files(actor: Actor, record_id: int, attachment_ids: list[int], target_record_id: int) -> int:
    """Move a draft's files to another draft record of the same patient."""
    _require(actor, WRITERS)
    record = _record(actor, record_id)
    target = get_scoped(MedicalRecord, target_record_id, actor.tenant_id)
    if target is None or target.patient_id != record.patient_id or target.id == record.id:
        raise FileActionError("Choose another record of the same patient.")
    if not (record.is_draft and target.is_draft):
        raise FileActionError("Files move only between draft records.")
    chosen = _chosen(actor, record, attachment_ids)
    taken = set(
        db.session.scalars(
            select(Attachment.name_key).where(
                Attachment.tenant_id == actor.tenant_id, Attachment.record_id == target.id
            )
        )
    )
    clashes = [a.filename for a in chosen if a.name_key in taken]
    if clashes:
        raise FileActionError(f"The other record already has a file named {', '.join(clashes)}.")
    for attachment in chosen:
        attachment.record_id = target.id
        audit_file(actor, "attachment.move", attachment.id, attachment.patient_id, changed_fields=["record"])
    db.session.flush()
    _recount(record)
    _recount(target)
    db.session.commit()
    return len(chosen)


def start_zip(actor: Actor, record_id: int, attachment_ids: list[int]) -> str:
    """Queue a zip of the chosen files of the record for the actor and return the job's id.

    The job (healthcrm/files/tasks.py) builds it with `write_zip`, which checks each file again when it
    runs. Raises FileActionError when no file is chosen, NotAllowed, NotFound."""
    _require(actor, READERS)
    record = _record(actor, record_id)
    if not attachment_ids:
        raise FileActionError("Choose at least one file.")
    # The asking is audited here, in the request; the job audits each file it reads into the zip.
    record_event(
        actor, "attachment.zip", resource_type="record", resource_id=record.id, patient_id=record.patient_id
    )
    return enqueue(
        ZIP_JOB,
        actor.user_id,
        record.id,
        ",".join(str(i) for i in attachment_ids),
        tenant_id=actor.tenant_id,
        user_id=actor.user_id,
        label=ZIP_JOB_LABEL,
    )


def audit_zip_download(actor: Actor, record_id: int) -> None:
    """The zip of a record's files is sent to the person who asked for it: audited (and committed)."""
    record = _record(actor, record_id)
    record_event(
        actor,
        "attachment.zip_download",
        resource_type="record",
        resource_id=record.id,
        patient_id=record.patient_id,
    )
    db.session.commit()


def write_zip(
    actor: Actor, record_id: int, attachment_ids: list[int], progress: Callable[[int], None]
) -> tuple[str, str]:
    """Zip the current versions of the chosen files into a new object; returns (key, download name).
    Infected or unscanned files are left out (listed in a note inside the zip)."""
    _require(actor, READERS)
    record = _record(actor, record_id)
    chosen = _chosen(actor, record, attachment_ids)
    storage = _storage()
    name = f"record-{record.id}-files.zip"
    key = make_key(actor.tenant_id, record.id, name)
    skipped, archived = [], []
    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            used: set[str] = set()
            for position, attachment in enumerate(chosen, start=1):
                version = attachment.current_version
                if version is None or not version.openable:
                    skipped.append(attachment.filename)
                    continue
                try:
                    _verify(storage, version)
                except FileArchived:
                    archived.append(attachment.filename)
                    continue
                arcname = _unique(version.original_name, used)
                with archive.open(arcname, "w", force_zip64=True) as member:
                    for chunk in read_version(version):
                        member.write(chunk)
                log_access(actor, version, ACCESS_DOWNLOAD)
                progress(int(90 * position / len(chosen)))
            if skipped or archived:
                lines = []
                if skipped:
                    lines += ["Waiting for a virus scan or quarantined:", *skipped]
                if archived:
                    lines += ["In the archive (retrieve them from their pages first):", *archived]
                archive.writestr("NOT-INCLUDED.txt", "\n".join(lines))
        spool.seek(0)
        storage.put_stream(key, spool, "application/zip")
    db.session.commit()
    return key, name


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate.casefold() in used:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"
    used.add(candidate.casefold())
    return candidate
