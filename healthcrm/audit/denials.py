"""Which patient a refused request was about, so that its `access.denied` event can name them: the patient's
"who has seen my record" and the audit viewer then show attempts as well as accesses."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from sqlalchemy import select

from ..extensions import db

# URL arguments that name one patient's row, tried in this order (a URL with a patient_id names them first).
PATIENT_NAMING_ARGUMENTS = (
    "patient_id",
    "record_id",
    "attachment_id",
    "appointment_id",
    "hold_id",
    "thread_id",
    "share_id",
    "result_id",
    "task_id",
    "entry_id",
    "contact_id",
)


@cache
def _columns() -> dict[str, tuple]:
    """Each argument's (table, its patient column); imported on first use, since every area imports audit."""
    from ..care.models import Task  # noqa: PLC0415
    from ..files.models import Attachment  # noqa: PLC0415
    from ..patients.models import EmergencyContact, Patient  # noqa: PLC0415
    from ..portal.messages.models import Thread  # noqa: PLC0415
    from ..records.models import LabResult, MedicalRecord  # noqa: PLC0415
    from ..scheduling.models import Appointment, WaitlistEntry  # noqa: PLC0415
    from ..sharing.models import ShareLink  # noqa: PLC0415

    return {
        "patient_id": (Patient, Patient.id),
        "record_id": (MedicalRecord, MedicalRecord.patient_id),
        "attachment_id": (Attachment, Attachment.patient_id),
        "appointment_id": (Appointment, Appointment.patient_id),
        "hold_id": (Appointment, Appointment.patient_id),
        "thread_id": (Thread, Thread.patient_id),
        "share_id": (ShareLink, ShareLink.patient_id),
        "result_id": (LabResult, LabResult.patient_id),
        "task_id": (Task, Task.patient_id),
        "entry_id": (WaitlistEntry, WaitlistEntry.patient_id),
        "contact_id": (EmergencyContact, EmergencyContact.patient_id),
    }


def patient_named_by(view_args: Mapping[str, object] | None, tenant_id: int | None) -> int | None:
    """The id of the patient of clinic `tenant_id` that a URL's arguments name: its `patient_id`, or the
    patient of the record, file, appointment, thread, share link, result, task, waitlist entry or emergency
    contact it names. None when it names none, or only another clinic's row: a denial never names another
    clinic's patient. One lookup by primary key at most."""
    if not view_args or tenant_id is None:
        return None
    for name in PATIENT_NAMING_ARGUMENTS:
        value = view_args.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            model, column = _columns()[name]
            return db.session.scalar(select(column).where(model.tenant_id == tenant_id, model.id == value))
    return None
