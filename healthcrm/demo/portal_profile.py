"""Demo profile activity: the clinic's first portal patient has asked to change their last name (a pending
change request, with its event: a task for the people who decide them)."""

from __future__ import annotations

from sqlalchemy import select

from ..accounts.models import Tenant, User
from ..audit.services import Actor
from ..clock import utcnow
from ..extensions import db
from ..patients.models import Patient
from ..portal import events
from ..portal.profile.models import PENDING, ProfileChangeRequest
from ..portal.profile.services import REQUESTED_KIND, TASK_KIND

NEW_LAST_NAME = "Okafor"


def seed(tenant: Tenant) -> None:
    """Add the request (flushes, does not commit); the event raised is handled by the sweep."""
    user = db.session.scalar(
        select(User).where(User.tenant_id == tenant.id, User.patient_id.is_not(None)).order_by(User.id)
    )
    if user is None:
        return
    patient = db.session.scalar(
        select(Patient).where(Patient.tenant_id == tenant.id, Patient.id == user.patient_id)
    )
    request = ProfileChangeRequest(
        tenant_id=tenant.id,
        patient_id=patient.id,
        changes={"last_name": {"from": patient.last_name, "to": NEW_LAST_NAME}},
        reason="I married in the spring; my insurance card has my new name.",
        status=PENDING,
        requested_by_id=user.id,
        created_at=utcnow(),
    )
    db.session.add(request)
    db.session.flush()
    actor = Actor(tenant_id=tenant.id, user_id=user.id, role="patient")
    events.raise_event(actor, REQUESTED_KIND, patient_id=patient.id, subject=(TASK_KIND, request.id))
