"""What every self-service service needs first: the error it raises for fixable input, the clinic's zone and
today, and the patient the actor may act for (a portal user only for themselves)."""

from __future__ import annotations

from datetime import date

from ..accounts.models import Tenant, User
from ..audit.services import Actor
from ..clock import clinic_today
from ..errors import DomainError, NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import can, require
from ..tenancy import get_scoped


class SelfCareError(DomainError):
    """Input about a refill, symptom, dose or care plan the person can fix (shown at `field`, 422)."""


def clinic_zone(tenant_id: int) -> str | None:
    tenant = db.session.get(Tenant, tenant_id)
    return tenant.timezone if tenant else None


def today_for(tenant_id: int) -> date:
    return clinic_today(clinic_zone(tenant_id))


def patient_for(actor: Actor, patient_id: int | None, staff_permission: str = "clinical.read") -> Patient:
    """The patient `actor` may act for: a portal user only their own (the id comes from their session), staff
    holding `staff_permission` any of their clinic's. Anything else is NotFound (404), never a hint."""
    if can(actor, "portal.use"):
        user = get_scoped(User, actor.user_id, actor.tenant_id) if actor.user_id else None
        if user is None or patient_id is None or user.patient_id != patient_id:
            raise NotFound("patient")
    else:
        require(actor, staff_permission)
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound("patient")
    return patient
