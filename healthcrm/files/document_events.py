"""What a patient document makes happen elsewhere: the staff task of a patient's upload (the portal event
"document.uploaded") and the "document" source of the portal's timeline. Imported at app start by the
documents views (healthcrm/files/document_views.py), which registers both."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import or_

from ..accounts.models import User
from ..accounts.roles import COACH, DOCTOR, NURSE
from ..care.services import open_task
from ..extensions import db
from ..patients.models import Patient
from ..portal import events
from ..portal.feed import Cursor, TimelineItem, timeline_source
from ..portal.models import PortalEvent
from ..tenancy import get_scoped, scoped
from .models import Attachment
from .patient_files import DOCUMENT_UPLOADED

TASK_KIND = "document"
# Without a coach, a patient's document goes to the clinical team's pool.
CLINICAL_POOL_ROLES = [DOCTOR, NURSE, COACH]
CLINICAL_POOL_NAME = "Clinical team"


@events.handles(DOCUMENT_UPLOADED)
def open_document_task(event: PortalEvent) -> None:
    """A task to look at the patient's new document: for their coach, or the clinical team's pool."""
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    if patient is None:
        return
    coach = (
        get_scoped(User, patient.assigned_coach_id, event.tenant_id) if patient.assigned_coach_id else None
    )
    link = f"/patients/{patient.id}#documents"
    title = f"Review a document from {patient.full_name}"
    if coach is not None and coach.active:
        open_task(event, TASK_KIND, title, link=link, assignee_id=coach.id)
    else:
        open_task(
            event, TASK_KIND, title, link=link, pool_roles=CLINICAL_POOL_ROLES, pool_name=CLINICAL_POOL_NAME
        )


@timeline_source("document", "Documents")
def document_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    """The documents the patient sees (their uploads, the clinic's files shown to them), newest first, in
    one query: keyset on (created_at, id)."""
    query = scoped(Attachment, tenant_id).where(
        Attachment.patient_id == patient_id,
        Attachment.record_id.is_(None),
        Attachment.visible_to_patient.is_(True),
    )
    if before is not None:
        at, key = before
        query = query.where(
            or_(Attachment.created_at < at, (Attachment.created_at == at) & (Attachment.id < key))
        )
    rows = db.session.scalars(query.order_by(Attachment.created_at.desc(), Attachment.id.desc()).limit(limit))
    return [
        TimelineItem(
            kind="document",
            at=document.created_at,
            key=document.id,
            title="You added a document" if document.uploaded_by_patient else "The clinic shared a document",
            detail=document.filename,
            link=url_for("portal_documents.index", _anchor=f"document-{document.id}"),
        )
        for document in rows
    ]
