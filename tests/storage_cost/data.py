"""Files, accesses and restore events for the storage cost tests, written straight to the tables (the
metrics read only the tables: no stored object is needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import time_machine

from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from healthcrm.files.models import SCAN_NOT_SCANNED, Attachment, AttachmentVersion, FileAccess
from healthcrm.storage_cost.metrics import RESTORE_REQUESTED

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
_names = count(1)
# A Monday at noon in Chicago (the test clinics' zone): the tests' "now".
NOW = datetime(2031, 3, 10, 17, 0, tzinfo=UTC)


def at(moment: datetime = NOW):
    """Travel to `moment` (aware) for the block, the clock not ticking."""
    return time_machine.travel(moment, tick=False)


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def add_file(
    tenant,
    patient,
    *,
    size: int,
    stored: int | None = None,
    storage_class: str = "STANDARD",
    created: datetime = NOW,
    record_id: int | None = None,
    preview: bool = False,
    frame: bool = False,
    name: str | None = None,
) -> AttachmentVersion:
    """One attachment with one version of `size` bytes (`stored` in the store); committed."""
    n = next(_names)
    filename = name or f"file-{n}.pdf"
    attachment = Attachment(
        tenant_id=tenant.id, record_id=record_id, patient_id=patient.id, filename=filename,
        name_key=filename.lower(), created_at=naive(created), updated_at=naive(created),
    )  # fmt: skip
    db.session.add(attachment)
    db.session.flush()
    version = AttachmentVersion(
        tenant_id=tenant.id, attachment_id=attachment.id, number=1, storage_key=f"t/{tenant.id}/{n}",
        original_name=filename, kind="pdf", content_type="application/pdf", size=size,
        stored_size=size if stored is None else stored,
        compression="gzip" if stored not in (None, size) else None,
        sha256="0" * 64, stored_sha256="0" * 64, storage_class=storage_class, scan_status=SCAN_NOT_SCANNED,
        preview_key=f"p/{n}" if preview else None, image_key=f"i/{n}" if frame else None,
        created_at=naive(created),
    )  # fmt: skip
    db.session.add(version)
    db.session.flush()
    attachment.current_version_id = version.id
    db.session.commit()
    return version


def add_access(version: AttachmentVersion, action: str, when: datetime) -> None:
    db.session.add(
        FileAccess(
            tenant_id=version.tenant_id, attachment_id=version.attachment_id, version_id=version.id,
            action=action, occurred_at=naive(when),
        )
    )  # fmt: skip
    db.session.commit()


def add_restore(version: AttachmentVersion, when: datetime) -> None:
    with time_machine.travel(when, tick=False):
        record_event(
            Actor.system(version.tenant_id), RESTORE_REQUESTED, resource_type="attachment_version",
            resource_id=version.id,
        )  # fmt: skip
    db.session.commit()
