"""The patient's whole record to take away (HIPAA right of access; the Cures Act's electronic health
information): one ZIP with `record.pdf` (readable), `fhir-bundle.json` (FHIR R4) and `files/…`.

Built by a job from what a share of everything would show: for the patient (from the portal) what the
portal shows them (finalized visits, no notes the doctor kept back, no held results, the documents they
may see); for staff, the clinical record. The ZIP is kept 24 hours for the person who asked.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..accounts.models import PATIENT, Tenant
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..errors import NotFound
from ..extensions import db
from ..files.models import Attachment
from ..files.services import FileArchived, read_version
from ..files.storage import get_storage, validate_key
from ..jobs.models import FINISHED, Job
from ..jobs.queue import enqueue, task
from ..patients.models import Patient
from ..permissions import require
from ..sharing.content import shared_content
from ..sharing.exports import build_pdf
from ..sharing.models import SCOPE_ALL, ShareLink
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .fhir import ExportedFile, bundle

KIND = "patient_export.build"
KEPT_FOR = timedelta(hours=24)


class ExportGone(Exception):
    """The export's 24 hours are over (its file is deleted)."""


def _patient_for(actor: Actor, patient_id: int) -> Patient:
    """Staff who may export; a patient only for themselves (the portal passes the session's patient)."""
    if actor.role != PATIENT:
        require(actor, "patient.export")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    return patient


def start_export(actor: Actor, patient_id: int) -> str:
    """Queue the build (audited as the request); returns the job id."""
    patient = _patient_for(actor, patient_id)
    record_event(
        actor, "patient.export", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    for_patient = 1 if actor.role == PATIENT else 0
    label = "Your health record" if for_patient else f"Health record of {patient.full_name}"
    return enqueue(
        KIND, patient.id, for_patient, tenant_id=actor.tenant_id, user_id=actor.user_id, label=label
    )


def _copy_for(patient: Patient, for_patient: bool) -> ShareLink:
    """A share of everything, never saved: `shared_content` then reads what that person may see."""
    return ShareLink(
        id=0,
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        created_by_staff=not for_patient,
        recipient_name=patient.full_name if for_patient else "the clinic's record",
        recipient_email="",
        scope=SCOPE_ALL,
        expires_at=utcnow(),
        created_at=utcnow(),
    )


def _files(patient: Patient, content, for_patient: bool) -> list[Attachment]:
    documents = scoped(Attachment, patient.tenant_id).where(
        Attachment.patient_id == patient.id, Attachment.record_id.is_(None)
    )
    if for_patient:
        documents = documents.where(Attachment.visible_to_patient.is_(True))
    documents = documents.options(selectinload(Attachment.current_version))
    chosen = list(content.attachments) + list(db.session.scalars(documents.order_by(Attachment.id)))
    return [a for a in chosen if a.current_version is not None and a.current_version.openable]


@task(KIND)
def build_export(patient_id: int, for_patient: int, *, progress) -> dict:
    patient = get_scoped(Patient, patient_id, progress.tenant_id)
    if patient is None:
        return {"made": False}
    now = utcnow()
    share = _copy_for(patient, bool(for_patient))
    content = shared_content(share)
    progress(10)
    attachments = _files(patient, content, bool(for_patient))
    key = validate_key(f"{patient.tenant_id}/patient-exports/{uuid.uuid4().hex}.zip")
    exported: list[ExportedFile] = []
    archived: list[str] = []
    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            used: set[str] = set()
            for position, attachment in enumerate(attachments, start=1):
                version = attachment.current_version
                chunks = read_version(version)
                try:
                    first = next(chunks, b"")
                except FileArchived:
                    # In the archive with no readable copy: listed in README.txt, retrieved from its page.
                    archived.append(attachment.filename)
                    continue
                path = _unique(f"files/{attachment.id}-{version.original_name}", used)
                sha1, size = hashlib.sha1(), 0  # noqa: S324 - FHIR's Attachment.hash is SHA-1
                with archive.open(path, "w", force_zip64=True) as member:
                    for chunk in itertools.chain([first], chunks):
                        sha1.update(chunk)
                        size += len(chunk)
                        member.write(chunk)
                exported.append(
                    ExportedFile(
                        attachment.id, path, attachment.filename, version.content_type, size,
                        base64.b64encode(sha1.digest()).decode(), version.created_at,
                    )
                )  # fmt: skip
                progress(10 + int(50 * position / max(1, len(attachments))))
            document = bundle(content, exported, now)
            archive.writestr("fhir-bundle.json", json.dumps(document, indent=2))
            progress(70)
            with archive.open("record.pdf", "w") as pdf:
                stamp = f"{now:%Y-%m-%d %H:%M} UTC"
                pages = build_pdf(content, f"Exported for {patient.full_name} · {stamp}", pdf)
            archive.writestr("README.txt", _readme(patient, now, len(exported), bool(for_patient), archived))
        progress(90)
        spool.seek(0)
        get_storage(current_app).put_stream(key, spool, "application/zip")
    return {
        "made": True,
        "key": key,
        "patient_id": patient.id,
        "files": len(exported),
        "resources": len(document["entry"]),
        "pages": pages,
    }


def _unique(path: str, used: set[str]) -> str:
    candidate, n = path, 1
    while candidate in used:
        n += 1
        stem, dot, ext = path.rpartition(".")
        candidate = f"{stem}-{n}.{ext}" if dot else f"{path}-{n}"
    used.add(candidate)
    return candidate


def _readme(patient: Patient, now: datetime, files: int, for_patient: bool, archived: list[str]) -> str:
    clinic = db.session.get(Tenant, patient.tenant_id)
    who = "as you see it in the patient portal" if for_patient else "as the clinic keeps it"
    return (
        f"Health record of {patient.full_name} from {clinic.name}, {who}.\n"
        f"Made {now:%Y-%m-%d %H:%M} UTC.\n\n"
        "record.pdf        the record to read and print\n"
        "fhir-bundle.json  the same as FHIR R4 (a Bundle of type collection) for another clinic's system\n"
        f"files/            {files} file(s), each a DocumentReference in the bundle (size, SHA-1)\n"
    ) + (
        "\nNot included: these files are in the clinic's archive; open each in the record (or your "
        "documents) to have it retrieved, then export again:\n" + "".join(f"  {name}\n" for name in archived)
        if archived
        else ""
    )


@dataclass(frozen=True)
class Download:
    key: str
    name: str


def export_job(actor: Actor, patient_id: int, job_id: str) -> Job:
    """An export of this patient that this person started; NotFound for anyone else's."""
    job = db.session.scalar(
        scoped(Job, actor.tenant_id).where(
            Job.id == job_id[:36], Job.kind == KIND, Job.user_id == actor.user_id
        )
    )
    if job is None or job.args[:1] != [patient_id]:
        raise NotFound(job_id)
    return job


def latest_export(actor: Actor, patient_id: int) -> Job | None:
    jobs = db.session.scalars(
        scoped(Job, actor.tenant_id)
        .where(Job.kind == KIND, Job.user_id == actor.user_id)
        .order_by(Job.created_at.desc())
        .limit(10)
    )
    return next((job for job in jobs if job.args[:1] == [patient_id]), None)


def is_downloadable(job: Job) -> bool:
    result = job.result or {}
    return (
        job.status == FINISHED
        and bool(result.get("made"))
        and not result.get("deleted")
        and job.finished_at >= utcnow() - KEPT_FOR
    )


def download(actor: Actor, patient_id: int, job_id: str) -> Download:
    """The finished export's key, audited; ExportGone after 24 hours."""
    job = export_job(actor, patient_id, job_id)
    result = job.result or {}
    if job.status != FINISHED or not result.get("made"):
        raise NotFound(job_id)
    if result.get("deleted") or job.finished_at < utcnow() - KEPT_FOR:
        raise ExportGone(job_id)
    patient_id = result["patient_id"]
    record_event(
        actor,
        "patient.export_download",
        resource_type="patient_export",
        resource_id=job.id,
        patient_id=patient_id,
    )
    db.session.commit()
    return Download(result["key"], f"health-record-{patient_id}-{job.finished_at:%Y%m%d}.zip")


def delete_old_exports() -> int:
    """Periodic: delete the ZIPs of exports finished more than 24 hours ago."""
    storage = get_storage(current_app)
    old = db.session.scalars(
        select(Job)
        .where(Job.kind == KIND, Job.status == FINISHED, Job.finished_at < utcnow() - KEPT_FOR)
        .execution_options(**ALL_TENANTS)  # periodic, for every clinic
    )
    deleted = 0
    for job in old:
        result = dict(job.result or {})
        if result.get("key") and not result.get("deleted"):
            storage.delete(result["key"])
            job.result = {**result, "deleted": True}
            deleted += 1
    db.session.commit()
    return deleted
