"""Demo patient documents: for the first portal patients of a demo clinic, one file the patient uploaded
(a home blood-pressure log) and one clinic letter staff made visible to them.

Written straight to the store and the tables, in the seeding transaction (no commit, no portal event, no
job): the files are the demo's own, so they are "not scanned" like any file without a scanner."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import timedelta

from flask import current_app
from reportlab.lib.pagesizes import LETTER
from reportlab.pdfgen import canvas
from sqlalchemy import select

from ..accounts.models import DOCTOR, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..extensions import db
from ..files import checks
from ..files.models import (
    PREVIEW_NONE,
    SCAN_NOT_SCANNED,
    SOURCE_PORTAL,
    SOURCE_STAFF,
    Attachment,
    AttachmentVersion,
)
from ..files.storage import get_storage, make_key
from ..files.uploads import name_key
from ..patients.models import Patient

PATIENTS_WITH_DOCUMENTS = 2


def _bp_log(rng: random.Random) -> bytes:
    today = utcnow().date()
    lines = ["date,morning,evening"]
    for days_ago in range(13, -1, -1):
        day = today - timedelta(days=days_ago)
        morning = f"{rng.randint(118, 142)}/{rng.randint(74, 90)}"
        evening = f"{rng.randint(115, 138)}/{rng.randint(72, 88)}"
        lines.append(f"{day.isoformat()},{morning},{evening}")
    return ("\n".join(lines) + "\n").encode()


def _letter(tenant: Tenant, patient: Patient, doctor: User) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=LETTER, invariant=1)
    page.setTitle("Letter after your visit")
    y = 720
    for line in (
        tenant.name,
        "",
        f"Dear {patient.first_name},",
        "",
        "Thank you for coming in. As we discussed, please keep measuring your blood pressure",
        "morning and evening for the next two weeks and upload the log in the portal.",
        "Take your medicines as prescribed, and call us if anything changes.",
        "",
        f"Kind regards, {doctor.full_name}",
    ):
        page.drawString(72, y, line)
        y -= 18
    page.showPage()
    page.save()
    return out.getvalue()


def _add(tenant, patient, user, name, data, source, visible, at) -> None:
    sniffed = checks.sniff(data[: checks.HEAD_BYTES], name)
    key = make_key(tenant.id, f"patient-{patient.id}", name)
    stored = get_storage(current_app).put_stream(key, io.BytesIO(data), sniffed.content_type)
    sha256 = hashlib.sha256(data).hexdigest()
    document = Attachment(
        tenant_id=tenant.id,
        record_id=None,
        patient_id=patient.id,
        filename=name,
        name_key=name_key(name),
        created_by_id=user.id,
        created_at=at,
        updated_at=at,
        source=source,
        visible_to_patient=visible,
    )
    db.session.add(document)
    db.session.flush()
    version = AttachmentVersion(
        tenant_id=tenant.id,
        attachment=document,
        number=1,
        storage_key=key,
        original_name=name,
        kind=sniffed.kind,
        content_type=sniffed.content_type,
        size=len(data),
        stored_size=len(data),
        sha256=sha256,
        stored_sha256=sha256,
        stored_etag=stored.etag,
        storage_class=stored.storage_class or "STANDARD",
        scan_status=SCAN_NOT_SCANNED,
        preview_status=PREVIEW_NONE,
        uploaded_by_id=user.id,
        created_at=at,
    )
    db.session.add(version)
    db.session.flush()
    document.current_version_id = version.id
    record_event(
        Actor(tenant_id=tenant.id, user_id=user.id, role=user.role),
        "attachment.upload",
        resource_type="attachment",
        resource_id=document.id,
        patient_id=patient.id,
    )


def seed(tenant: Tenant, patients: list[Patient], staff: dict[str, User], rng: random.Random) -> int:
    """Add the demo documents of the clinic's first portal patients; flushes, does not commit. Returns how
    many documents were added."""
    portal_users = list(
        db.session.scalars(
            select(User)
            .where(User.tenant_id == tenant.id, User.patient_id.is_not(None))
            .order_by(User.id)
            .limit(PATIENTS_WITH_DOCUMENTS)
        )
    )
    by_id = {p.id: p for p in patients}
    doctor = staff[DOCTOR]
    now = utcnow()
    added = 0
    for user in portal_users:
        patient = by_id.get(user.patient_id)
        if patient is None:
            continue
        _add(
            tenant,
            patient,
            doctor,
            "Letter after your visit.pdf",
            _letter(tenant, patient, doctor),
            SOURCE_STAFF,
            True,
            now - timedelta(days=rng.randint(10, 20)),
        )
        _add(
            tenant,
            patient,
            user,
            "Home blood pressure log.csv",
            _bp_log(rng),
            SOURCE_PORTAL,
            True,
            now - timedelta(days=rng.randint(1, 5)),
        )
        added += 2
    return added
