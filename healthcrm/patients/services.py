"""The patient list and profile. Every read and change is audited in the same transaction.

Staff read every patient of their clinic; a patient (the portal) reads only their own profile; changes
need "patient.edit" (healthcrm/permissions.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from ..accounts.models import COACH, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import clinic_today
from ..counters import MRN, take_next
from ..errors import DomainError, NotAllowed
from ..extensions import db
from ..paging import PageWindow
from ..permissions import can, require
from ..tenancy import get_scoped, scoped
from .models import CARE_STAGES, SEXES, EmergencyContact, Patient

PAGE_SIZE = 20
MAX_QUERY_LENGTH = 100
PHONE_SEPARATORS = ("-", " ", "(", ")", ".", "+")
EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "email",
    "phone",
    "address_line",
    "city",
    "state",
    "postal_code",
    "insurance_provider",
    "insurance_member_id",
    "insurance_group",
    "care_stage",
    "assigned_coach_id",
)


class PatientError(DomainError):
    """Input the person can fix; `field` names the form field."""


@dataclass(frozen=True)
class PatientPage(PageWindow):
    patients: list[Patient]
    total: int
    page: int
    per_page: int
    query: str
    care_stage: str


@dataclass(frozen=True)
class ContactInput:
    name: str
    relationship: str | None
    phone: str


def search_patients(
    actor: Actor, query: str = "", *, care_stage: str = "", page: int = 1, per_page: int = PAGE_SIZE
) -> PatientPage:
    """One page of the clinic's patients matching name, MRN, email or phone (audited as a list read)."""
    require(actor, "patient.read")
    query = query.strip()[:MAX_QUERY_LENGTH]
    statement = scoped(Patient, actor.tenant_id)
    for term in query.replace(",", " ").split():
        like = f"%{term.lower()}%"
        digits = "".join(ch for ch in term if ch.isdigit())
        conditions = [
            func.lower(Patient.first_name).like(like),
            func.lower(Patient.last_name).like(like),
            func.lower(Patient.mrn).like(like),
            func.lower(Patient.email).like(like),
        ]
        if len(digits) >= 3:
            phone_digits = Patient.phone
            for separator in PHONE_SEPARATORS:
                phone_digits = func.replace(phone_digits, separator, "")
            conditions.append(phone_digits.like(f"%{digits}%"))
        statement = statement.where(or_(*conditions))
    if care_stage in CARE_STAGES:
        statement = statement.where(Patient.care_stage == care_stage)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    patients = list(
        db.session.scalars(
            statement.options(selectinload(Patient.assigned_coach))
            .order_by(Patient.last_name, Patient.first_name, Patient.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    record_event(actor, "patient.list", resource_type="patient", changed_fields=None)
    db.session.commit()
    return PatientPage(
        patients, total, page, per_page, query, care_stage if care_stage in CARE_STAGES else ""
    )


def get_patient(actor: Actor, patient_id: int) -> Patient | None:
    """The clinic's patient (None for another clinic's id, or for a patient another patient's), audited as
    a read."""
    if not can(actor, "patient.read"):
        if not can(actor, "portal.use"):
            raise NotAllowed("patient.read", actor.role)
        if _own_patient_id(actor) != patient_id:
            return None
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        return None
    record_event(
        actor, "patient.view", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    return patient


def _own_patient_id(actor: Actor) -> int | None:
    """The patient a portal user is (their own profile is the only one they read)."""
    user = get_scoped(User, actor.user_id, actor.tenant_id) if actor.user_id else None
    return user.patient_id if user is not None else None


def clinic_coaches(tenant_id: int) -> list[User]:
    return list(
        db.session.scalars(
            scoped(User, tenant_id).where(User.role == COACH, User.active.is_(True)).order_by(User.full_name)
        )
    )


def _validate(tenant_id: int, values: dict[str, Any]) -> None:
    if values.get("sex") not in SEXES:
        raise PatientError("Choose one of the listed options.", "sex")
    if values.get("care_stage") not in CARE_STAGES:
        raise PatientError("Choose one of the listed care stages.", "care_stage")
    born = values.get("date_of_birth")
    if not isinstance(born, date) or born > clinic_today(_zone(tenant_id)) or born.year < 1900:
        raise PatientError("Enter a date of birth in the past.", "date_of_birth")
    coach_id = values.get("assigned_coach_id")
    if coach_id and coach_id not in {coach.id for coach in clinic_coaches(tenant_id)}:
        raise PatientError("Choose a coach of this clinic.", "assigned_coach_id")


def _zone(tenant_id: int) -> str:
    return db.session.get(Tenant, tenant_id).timezone


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    cleaned = {}
    for name in EDITABLE_FIELDS:
        value = values.get(name)
        if isinstance(value, str):
            value = value.strip() or None
        cleaned[name] = value
    if cleaned.get("email"):
        cleaned["email"] = cleaned["email"].lower()
    cleaned["assigned_coach_id"] = cleaned.get("assigned_coach_id") or None
    return cleaned


def _replace_contacts(patient: Patient, contacts: list[ContactInput]) -> bool:
    wanted = [
        (c.name.strip(), (c.relationship or "").strip() or None, c.phone.strip())
        for c in contacts
        if c.name.strip() or c.phone.strip()
    ]
    for name, _, phone in wanted:
        if not name or not phone:
            raise PatientError(
                "Each emergency contact needs a name and a phone number.", "emergency_contacts"
            )
    current = [(c.name, c.relationship_to_patient, c.phone) for c in patient.emergency_contacts]
    if current == wanted:
        return False
    patient.emergency_contacts.clear()
    for name, relationship, phone in wanted:
        patient.emergency_contacts.append(
            EmergencyContact(
                tenant_id=patient.tenant_id, name=name, relationship_to_patient=relationship, phone=phone
            )
        )
    return True


def next_mrn(tenant_id: int, prefix: str = "MRN") -> str:
    """The clinic's next free MRN, from its counter (safe when two patients are added at once); numbers an
    MRN typed or imported by hand already took are skipped."""
    number = take_next(tenant_id, MRN, start_after=_patient_count(tenant_id))
    while db.session.scalar(scoped(Patient, tenant_id).where(Patient.mrn == f"{prefix}-{number:06d}")):
        number = take_next(tenant_id, MRN)
    return f"{prefix}-{number:06d}"


def _patient_count(tenant_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(scoped(Patient, tenant_id).subquery())) or 0


def create_patient(actor: Actor, values: dict[str, Any], contacts: list[ContactInput]) -> Patient:
    require(actor, "patient.edit")
    cleaned = _clean(values)
    _validate(actor.tenant_id, cleaned)
    patient = Patient(tenant_id=actor.tenant_id, mrn=next_mrn(actor.tenant_id), **cleaned)
    db.session.add(patient)
    _replace_contacts(patient, contacts)
    db.session.flush()
    record_event(
        actor,
        "patient.create",
        resource_type="patient",
        resource_id=patient.id,
        patient_id=patient.id,
        changed_fields=[name for name, value in cleaned.items() if value is not None],
    )
    db.session.commit()
    return patient


def update_patient(
    actor: Actor, patient_id: int, values: dict[str, Any], contacts: list[ContactInput]
) -> Patient:
    """Apply the edited profile; audit the names of the fields that changed (never their values)."""
    require(actor, "patient.edit")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise LookupError(patient_id)
    cleaned = _clean(values)
    _validate(actor.tenant_id, cleaned)
    changed = [name for name, value in cleaned.items() if getattr(patient, name) != value]
    for name in changed:
        setattr(patient, name, cleaned[name])
    if _replace_contacts(patient, contacts):
        changed.append("emergency_contacts")
    record_event(
        actor,
        "patient.update",
        resource_type="patient",
        resource_id=patient.id,
        patient_id=patient.id,
        changed_fields=changed,
    )
    db.session.commit()
    return patient
