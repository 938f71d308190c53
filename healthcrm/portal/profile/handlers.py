"""What profile events set off: a staff task for a change request (for the people who decide them, a pool:
coaches do not hold "care.change_requests"), and the patient's notification when it is decided.
Imported at app start (MODULES_THAT_REGISTER)."""

from __future__ import annotations

from ...care.services import open_task
from ...patients.models import Patient
from ...permissions import roles_for
from ...tenancy import get_scoped
from .. import events
from ..models import PortalEvent
from ..notifications import notify
from .models import APPROVED, ProfileChangeRequest
from .services import DECIDED_KIND, REQUESTED_KIND, TASK_KIND

# Paths, not url_for: handlers run in jobs, without a request to build URLs from.
PORTAL_PROFILE = "/portal/profile"
STAFF_CHANGES = "/care/change-requests"
NOTIFICATION_KIND = "profile"


@events.handles(REQUESTED_KIND)
def open_change_task(event: PortalEvent) -> None:
    """A task to decide the request, unless it was withdrawn or decided before the event was handled."""
    request = get_scoped(ProfileChangeRequest, event.subject_id, event.tenant_id)
    if request is None or not request.is_pending:
        return
    open_task(
        event,
        TASK_KIND,
        f"Profile change request from {request.patient.full_name}",
        link=f"{STAFF_CHANGES}#change-{request.id}",
        pool_roles=sorted(roles_for("care.change_requests")),
        pool_name="Profile changes",
    )


@events.handles(DECIDED_KIND)
def tell_the_patient(event: PortalEvent) -> None:
    patient_user = _portal_user_id(event)
    if patient_user is None:
        return
    text = (
        "The clinic updated your profile as you asked."
        if event.payload.get("status") == APPROVED
        else "The clinic answered your profile change request."
    )
    notify(event, patient_user, NOTIFICATION_KIND, text, PORTAL_PROFILE)


def _portal_user_id(event: PortalEvent) -> int | None:
    patient = get_scoped(Patient, event.patient_id, event.tenant_id)
    user = patient.portal_user if patient is not None else None
    return user.id if user is not None and user.active else None
