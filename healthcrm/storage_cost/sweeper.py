"""The storage sweeper (`storage.sweep`, daily per clinic; `flask storage sweep` at once).

It deletes one thing only: multipart uploads under the clinic's prefix that the app started and no longer
tracks (no upload session still uploading or completing names the upload id), once older than the grace
period (the local backend's abandoned `.uploads/` folders are such uploads too). Everything else it only
reports, in a `StorageSweep` row per run shown on /admin/storage/sweeps, with an in-app notice to the
clinic's admins when it finds something new:

- orphans: objects in storage that no row names, in the areas the database indexes;
- missing: objects a row names (a version, its preview or DICOM image, an audit archive) that the store
  does not have.

Each key is classified by its area (the segment after the clinic's id). Only the areas whose keys the
database keeps are judged (`JUDGED_AREAS`); the others are counted and left alone, with the reason:
checkpoints are their own record (signed, deliberately not in the database), exports are short-lived files
named by job rows and deleted by their own cleanup. Objects younger than the grace period are not judged
either: an upload's object is stored a moment before its row is committed.

The listing and the rows are merged in one pass each (healthcrm/storage_cost/inventory.py), so a clinic with
a million objects costs a listing, a sorted query and flat memory. The grace period matters on S3: moto
reports every upload as started in 2010, and boto3's own multipart uploads of a large export (which no
upload session tracks) are in flight for minutes.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import literal, select, union_all

from ..accounts.models import Tenant, User
from ..accounts.roles import ADMIN
from ..clock import utcnow
from ..extensions import db
from ..files.models import UPLOAD_COMPLETING, UPLOADING, AttachmentVersion, UploadSession
from ..files.services import ZIP_JOB
from ..files.storage import Storage, get_storage
from ..jobs.models import Job
from ..portal.notifications import notify_staff
from ..retention.models import PurgedFile
from ..tenancy import scoped
from ..tenant_scope import ALL_TENANTS, all_tenants
from .inventory import in_key_order, merge, stream
from .restore_models import StorageSweep

log = logging.getLogger(__name__)

SWEEP_JOB = "storage.sweep"
NOTICE_KIND = "storage_sweep"
GRACE_HOURS_DEFAULT = 24
SAMPLE_DEFAULT = 20
# A missing key is asked about again (the row still there? the object still absent?) up to this many times.
RECHECK_MAX = 1000

# The areas whose keys the database keeps: judged for orphans and missing objects.
JUDGED_AREAS = {
    "medical-records": "Record files and patient documents (attachment versions, uploads, zips)",
    "previews": "Thumbnails and DICOM images (attachment versions)",
    "quarantine": "Quarantined files (attachment versions)",
    "audit-archive": "Audit log archives (the archive manifest)",
}
# The areas counted but not judged, and why.
UNJUDGED_AREAS = {
    "audit-checkpoints": "Signed checkpoints: the store is their only record, by design",
    "audit-exports": "Audit CSV exports: named by job rows, deleted after 24 hours",
    "share-exports": "Share PDF exports: named by job rows, deleted after 24 hours",
    "patient-exports": "Record exports: named by job rows, deleted after 24 hours",
    "clinic-exports": "Clinic exports: named by job rows, deleted after 24 hours",
}
# What a row that names a key is, and whether the object must exist for it.
MUST_EXIST = frozenset({"version", "preview", "image", "audit archive"})


@dataclass
class Finding:
    """One kind of finding across a clinic's storage: a count, the first few, and a digest of all."""

    sample_size: int
    count: int = 0
    size: int = 0
    sample: list = field(default_factory=list)
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, key: str, detail) -> None:
        self.count += 1
        self.digest.update(key.encode() + b"\n")
        if len(self.sample) < self.sample_size:
            self.sample.append([key, detail])


def grace() -> timedelta:
    return timedelta(hours=float(current_app.config.get("STORAGE_SWEEP_GRACE_HOURS", GRACE_HOURS_DEFAULT)))


def sample_size() -> int:
    return int(current_app.config.get("STORAGE_SWEEP_SAMPLE", SAMPLE_DEFAULT))


def area_of(key: str, tenant_id: int) -> str:
    prefix = f"{tenant_id}/"
    if not key.startswith(prefix):
        return "(other)"
    return key[len(prefix) :].split("/", 1)[0]


# --- uploads ------------------------------------------------------------------------------------------------


def _sweep_uploads(tenant_id: int, storage: Storage, now: datetime, sweep: StorageSweep) -> list[str]:
    """Abort the clinic's untracked open uploads older than the grace; return their keys."""
    # Listed first, then the sessions read: an upload whose session commits in between is seen tracked; one
    # whose session is not committed yet is seconds old, within the grace.
    uploads = storage.list_open_uploads(f"{tenant_id}/")
    sweep.open_uploads = len(uploads)
    if not uploads:
        return []
    tracked = set(
        db.session.scalars(
            select(UploadSession.multipart_id).where(
                UploadSession.tenant_id == tenant_id,
                UploadSession.status.in_((UPLOADING, UPLOAD_COMPLETING)),
                UploadSession.multipart_id.in_([u.upload_id for u in uploads]),
            )
        )
    )
    aborted = []
    cutoff = now.replace(tzinfo=UTC) - grace()
    for upload in uploads:
        if upload.upload_id in tracked or upload.initiated > cutoff:
            continue
        storage.abort_multipart_upload(upload.key, upload.upload_id)
        aborted.append(upload.key)
    return aborted


# --- orphans and missing objects ------------------------------------------------------------------------


def _named_keys(tenant_id: int):
    """(key, what) for every key a row of the clinic names, in byte order of the key."""
    versions = AttachmentVersion.__table__
    uploads = UploadSession.__table__
    purged = PurgedFile.__table__
    from ..audit.models import AuditArchive  # noqa: PLC0415 - the audit area imports storage at import

    archives = AuditArchive.__table__
    parts = [
        select(versions.c.storage_key.label("key"), literal("version").label("what")).where(
            versions.c.tenant_id == tenant_id
        ),
        select(versions.c.preview_key.label("key"), literal("preview").label("what")).where(
            versions.c.tenant_id == tenant_id, versions.c.preview_key.is_not(None)
        ),
        select(versions.c.image_key.label("key"), literal("image").label("what")).where(
            versions.c.tenant_id == tenant_id, versions.c.image_key.is_not(None)
        ),
        select(uploads.c.storage_key.label("key"), literal("upload").label("what")).where(
            uploads.c.tenant_id == tenant_id, uploads.c.status.in_((UPLOADING, UPLOAD_COMPLETING))
        ),
        select(purged.c.storage_key.label("key"), literal("purge").label("what")).where(
            purged.c.tenant_id == tenant_id
        ),
        select(archives.c.key.label("key"), literal("audit archive").label("what")).where(
            archives.c.tenant_id == tenant_id, archives.c.deleted_at.is_(None)
        ),
    ]
    named = union_all(*parts).subquery()
    rows = stream(select(named.c.key, named.c.what).order_by(in_key_order(named.c.key)))
    # The few keys named outside the tables' columns: the zips' (in their job's result) and the archive
    # manifest (written beside the archive files).
    extra = [(key, "zip") for key in _zip_keys(tenant_id)]
    if db.session.scalar(select(archives.c.id).where(archives.c.tenant_id == tenant_id).limit(1)):
        extra.append((f"{tenant_id}/audit-archive/manifest.json", "manifest"))
    return heapq.merge(rows, sorted(extra), key=lambda row: row[0])


def _zip_keys(tenant_id: int) -> list[str]:
    results = db.session.scalars(
        scoped(Job, tenant_id)
        .with_only_columns(Job.result)
        .where(Job.kind == ZIP_JOB, Job.result.is_not(None))
    )
    return [result["key"] for result in results if isinstance(result, dict) and result.get("key")]


def _still_named(tenant_id: int, key: str) -> bool:
    versions = AttachmentVersion.__table__
    return (
        db.session.scalar(
            select(versions.c.id)
            .where(
                versions.c.tenant_id == tenant_id,
                (versions.c.storage_key == key)
                | (versions.c.preview_key == key)
                | (versions.c.image_key == key),
            )
            .limit(1)
        )
        is not None
    )


def sweep_clinic(tenant_id: int, *, notify: bool = True) -> StorageSweep:
    """Sweep one clinic's storage: abort its untracked old uploads, count and judge its objects, keep the
    report, and tell the admins when something new was found. Deletes nothing else."""
    storage = get_storage(current_app)
    now = utcnow()
    sweep = StorageSweep(tenant_id=tenant_id, started_at=now, objects=0, bytes=0, open_uploads=0, too_new=0)
    size = sample_size()
    orphans, missing = Finding(size), Finding(size)
    areas: dict[str, dict] = {}
    too_new_after = now.replace(tzinfo=UTC) - grace()
    aborted = _sweep_uploads(tenant_id, storage, now, sweep)
    candidates: list[tuple[str, str]] = []
    for key, listed, named in merge(storage.iter_objects(f"{tenant_id}/"), _named_keys(tenant_id)):
        area = area_of(key, tenant_id)
        if listed is not None:
            stats = areas.setdefault(area, {"objects": 0, "bytes": 0, "judged": area in JUDGED_AREAS})
            stats["objects"] += 1
            stats["bytes"] += listed.size
            sweep.objects += 1
            sweep.bytes += listed.size
            if named or area not in JUDGED_AREAS:
                continue
            if listed.last_modified > too_new_after:
                sweep.too_new += 1
                continue
            orphans.add(key, listed.size)
            orphans.size += listed.size
        elif MUST_EXIST & set(named):
            candidates.append((key, ", ".join(sorted(set(named) & MUST_EXIST))))
    db.session.rollback()  # the streaming read ends here
    for position, (key, what) in enumerate(candidates):
        # Named when the rows were read, not stored when listed: unless the row went meanwhile (a file
        # deleted, row first then object) or the object arrived, it is missing.
        if position < RECHECK_MAX and (
            storage.head(key) is not None or not _still_named_if_version(tenant_id, key, what)
        ):
            continue
        missing.add(key, what)
    sweep.aborted_uploads = len(aborted)
    sweep.orphans, sweep.orphan_bytes, sweep.missing = orphans.count, orphans.size, missing.count
    sweep.areas = dict(sorted(areas.items()))
    sweep.samples = {"aborted": aborted[:size], "orphans": orphans.sample, "missing": missing.sample}
    sweep.digests = {"orphans": orphans.digest.hexdigest(), "missing": missing.digest.hexdigest()}
    sweep.finished_at = utcnow()
    sweep.new_findings = _is_new(tenant_id, sweep)
    db.session.add(sweep)
    db.session.flush()
    if sweep.new_findings and notify:
        _tell_admins(tenant_id, sweep)
    db.session.commit()
    return sweep


def _still_named_if_version(tenant_id: int, key: str, what: str) -> bool:
    if what == "audit archive":
        return True  # an archive row is never deleted, only marked (and then not named)
    return _still_named(tenant_id, key)


def _previous(tenant_id: int) -> StorageSweep | None:
    return db.session.scalar(
        scoped(StorageSweep, tenant_id)
        .where(StorageSweep.finished_at.is_not(None))
        .order_by(StorageSweep.id.desc())
        .limit(1)
    )


def _is_new(tenant_id: int, sweep: StorageSweep) -> bool:
    """Whether this run found an orphan or a missing object the previous run did not. Exact while a kind
    has no more findings than the sample holds (the usual case: none or a few); beyond that, the digest of
    all of them changed without their number going down."""
    previous = _previous(tenant_id)
    for kind in ("orphans", "missing"):
        count = getattr(sweep, kind)
        if not count:
            continue
        if previous is None:
            return True
        before = getattr(previous, kind)
        if sweep.digests[kind] == (previous.digests or {}).get(kind):
            continue
        size = sample_size()
        if count <= size and before <= size:
            seen = {item[0] for item in (previous.samples or {}).get(kind, [])}
            if any(item[0] not in seen for item in sweep.samples[kind]):
                return True
            continue
        if count >= before:
            return True
    return False


def _tell_admins(tenant_id: int, sweep: StorageSweep) -> None:
    admins = db.session.scalars(
        scoped(User, tenant_id).with_only_columns(User.id).where(User.role == ADMIN, User.active.is_(True))
    ).all()
    found = []
    if sweep.orphans:
        found.append(f"{sweep.orphans} object{'s' if sweep.orphans != 1 else ''} no record names")
    if sweep.missing:
        found.append(f"{sweep.missing} file{'s' if sweep.missing != 1 else ''} missing from storage")
    notify_staff(
        tenant_id,
        admins,
        NOTICE_KIND,
        f"The storage sweep found {' and '.join(found)}. Nothing was deleted; see the report.",
        f"/admin/storage/sweeps/{sweep.id}",
    )


def sweep_all() -> str:
    """Periodic (daily): a `storage.sweep` job for each clinic (run inline without Redis)."""
    from ..jobs.queue import enqueue  # noqa: PLC0415 - jobs imports every area's tasks

    clinics = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS)))
    for tenant_id in clinics:
        enqueue(SWEEP_JOB, tenant_id=tenant_id, label="Storage sweep")
    return f"{len(clinics)} storage sweeps queued"


# --- the reports ------------------------------------------------------------------------------------------


def sweeps_of(tenant_id: int, limit: int = 30) -> list[StorageSweep]:
    return list(
        db.session.scalars(scoped(StorageSweep, tenant_id).order_by(StorageSweep.id.desc()).limit(limit))
    )


def area_label(area: str) -> str:
    return JUDGED_AREAS.get(area) or UNJUDGED_AREAS.get(area) or "Not a folder the app writes"


# --- flask storage sweep ----------------------------------------------------------------------------------


@click.command("sweep")
@click.option("--clinic", "clinic_id", type=int, default=None, help="Only this clinic (its id).")
@with_appcontext
def sweep_command(clinic_id: int | None) -> None:
    """Abort untracked old uploads and report orphan and missing objects (deletes nothing else)."""
    with all_tenants("the sweep walks every clinic"):
        clinics = (
            [clinic_id] if clinic_id else list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
        )
    for tenant_id in clinics:
        sweep = sweep_clinic(tenant_id)
        click.echo(
            f"clinic {tenant_id}: {sweep.objects} objects, {sweep.aborted_uploads} of "
            f"{sweep.open_uploads} open uploads aborted, {sweep.orphans} orphans, {sweep.missing} missing"
            + (" (new findings: admins notified)" if sweep.new_findings else "")
        )
