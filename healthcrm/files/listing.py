"""What the files section of a record page shows, for one actor: read by the record page
(healthcrm/records/views.py) and by the files blueprint's own fragment of it."""

from __future__ import annotations

from dataclasses import dataclass

from ..audit.services import Actor, record_event
from ..extensions import db
from ..permissions import can
from ..records.models import MedicalRecord
from . import services
from .models import Attachment, UploadSession


@dataclass(frozen=True)
class RecordFiles:
    """What the files section of a record page shows."""

    attachments: list[Attachment]
    open_uploads: list[UploadSession]
    move_targets: list[MedicalRecord]
    can_write: bool


def record_files(actor: Actor, record: MedicalRecord, *, audited: bool = False) -> RecordFiles:
    """The record's files as `actor` sees them: uploads to resume and drafts to move files to only for
    those who may change files. `audited`: the list is shown on its own (not on the record page, whose
    read is audited already), so its read is audited here."""
    can_write = can(actor, "attachment.write")
    if audited:
        record_event(
            actor,
            "attachment.list",
            resource_type="record",
            resource_id=record.id,
            patient_id=record.patient_id,
        )
        db.session.commit()
    return RecordFiles(
        attachments=services.record_attachments(actor, record.id),
        open_uploads=services.open_uploads(actor, record.id) if can_write else [],
        move_targets=services.move_targets(actor, record.id) if can_write and record.is_draft else [],
        can_write=can_write,
    )
