"""The patient's profile: contact details, address, insurance and emergency contacts change directly (each
change audited like a staff edit and raised as "profile.updated"); identity fields (name, date of birth,
sex) become a change request ("profile.change_requested"), one pending at a time, that staff approve or
reject once ("profile.change_decided"), or the patient withdraws ("profile.change_withdrawn")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ...audit.services import Actor, record_event
from ...care.services import complete_tasks_about
from ...clock import utcnow
from ...errors import Conflict, NotFound
from ...extensions import db
from ...patients.models import EmergencyContact, Patient
from ...patients.services import PHONE_SEPARATORS, PatientError
from ...patients.services import _validate as validate_patient
from ...permissions import require
from ...selfcare.clinic import patient_for
from ...tenancy import get_scoped, scoped
from .. import events
from .models import (
    APPROVED,
    IDENTITY_FIELDS,
    PENDING,
    REJECTED,
    WITHDRAWN,
    ProfileChangeRequest,
)

CONTACT_FIELDS = ("email", "phone", "address_line", "city", "state", "postal_code")
INSURANCE_FIELDS = ("insurance_provider", "insurance_member_id", "insurance_group")
SECTIONS = {"contact": CONTACT_FIELDS, "insurance": INSURANCE_FIELDS}
REASON_MAX_CHARS = 1000
NOTE_MAX_CHARS = 1000
PAST_SHOWN = 10  # decided requests on the patient's page
RECENTLY_DECIDED = 20  # decided requests under the staff queue
PHONE_MIN_DIGITS = 7
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DECISIONS = {"approve": APPROVED, "reject": REJECTED}
UPDATED_KIND = "profile.updated"
REQUESTED_KIND = "profile.change_requested"
DECIDED_KIND = "profile.change_decided"
WITHDRAWN_KIND = "profile.change_withdrawn"
TASK_KIND = "profile_change"


class ProfileError(PatientError):
    """Profile input the patient or staff can fix (shown at `field`, 422)."""


@dataclass
class ProfileView:
    patient: Patient
    pending: ProfileChangeRequest | None
    past: list[ProfileChangeRequest]


# --- reading ---------------------------------------------------------------------------------------------


def _requests_of(tenant_id: int, patient_id: int) -> list[ProfileChangeRequest]:
    return list(
        db.session.scalars(
            scoped(ProfileChangeRequest, tenant_id)
            .where(ProfileChangeRequest.patient_id == patient_id)
            .order_by(ProfileChangeRequest.created_at.desc(), ProfileChangeRequest.id.desc())
            .limit(PAST_SHOWN + 1)
        )
    )


def profile_view(actor: Actor, patient_id: int) -> ProfileView:
    """The patient's details, their pending change request and past decisions, audited as one read."""
    patient = patient_for(actor, patient_id, "patient.read")
    requests = _requests_of(actor.tenant_id, patient.id)
    pending = next((r for r in requests if r.is_pending), None)
    past = [r for r in requests if not r.is_pending][:PAST_SHOWN]
    record_event(
        actor, "profile.view", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    return ProfileView(patient, pending, past)


# --- direct changes --------------------------------------------------------------------------------------


def _length_of(model, name: str) -> int:
    return model.__table__.c[name].type.length


def _cleaned_text(model, name: str, value: Any, *, required: str | None = None) -> str | None:
    value = (value or "").strip() if isinstance(value, str) or value is None else str(value)
    if not value:
        if required:
            raise ProfileError(required, name)
        return None
    limit = _length_of(model, name)
    if len(value) > limit:
        raise ProfileError(f"Keep this under {limit} characters.", name)
    return value


def _check_phone(value: str | None, field: str) -> None:
    if value is None:
        return
    rest = value
    for separator in PHONE_SEPARATORS:
        rest = rest.replace(separator, "")
    if not rest.isdigit() or len(rest) < PHONE_MIN_DIGITS:
        raise ProfileError("Enter a phone number with its area code, e.g. 555-201-0134.", field)


def _clean_section(section: str, values: dict[str, Any]) -> dict[str, str | None]:
    cleaned = {name: _cleaned_text(Patient, name, values.get(name)) for name in SECTIONS[section]}
    if section == "contact":
        if cleaned["email"]:
            cleaned["email"] = cleaned["email"].lower()
            if not EMAIL_SHAPE.match(cleaned["email"]):
                raise ProfileError("Enter an email address like name@example.com.", "email")
        _check_phone(cleaned["phone"], "phone")
    return cleaned


def _changed(actor: Actor, patient: Patient, changed: list[str], section: str) -> None:
    """Audit the change like a staff edit (field names, never values) and raise the portal event."""
    record_event(
        actor,
        "patient.update",
        resource_type="patient",
        resource_id=patient.id,
        patient_id=patient.id,
        changed_fields=changed,
    )
    events.raise_event(
        actor, UPDATED_KIND, patient_id=patient.id, subject=("patient", patient.id), section=section
    )
    events.commit()


def update_details(actor: Actor, patient_id: int, section: str, values: dict[str, Any]) -> list[str]:
    """Change the patient's contact details and address ("contact") or insurance ("insurance"). Returns the
    names of the fields that changed; nothing is written when none did."""
    if section not in SECTIONS:
        raise NotFound("profile section")
    patient = patient_for(actor, patient_id, "patient.edit")
    cleaned = _clean_section(section, values)
    changed = [name for name, value in cleaned.items() if getattr(patient, name) != value]
    if not changed:
        db.session.rollback()
        return []
    for name in changed:
        setattr(patient, name, cleaned[name])
    _changed(actor, patient, changed, section)
    return changed


def _contact_values(values: dict[str, Any]) -> dict[str, str | None]:
    return {
        "name": _cleaned_text(
            EmergencyContact, "name", values.get("name"), required="Enter the contact's name."
        ),
        "relationship_to_patient": _cleaned_text(
            EmergencyContact, "relationship_to_patient", values.get("relationship")
        ),
        "phone": _phone(values.get("phone")),
    }


def _phone(value: Any) -> str | None:
    phone = _cleaned_text(EmergencyContact, "phone", value, required="Enter a phone number for the contact.")
    _check_phone(phone, "phone")
    return phone


def _contact_of(actor: Actor, patient: Patient, contact_id: int | None) -> EmergencyContact:
    contact = (
        db.session.scalar(
            scoped(EmergencyContact, actor.tenant_id).where(
                EmergencyContact.id == contact_id, EmergencyContact.patient_id == patient.id
            )
        )
        if contact_id is not None
        else None
    )
    if contact is None:
        raise NotFound("emergency contact")
    return contact


def add_emergency_contact(actor: Actor, patient_id: int, values: dict[str, Any]) -> EmergencyContact:
    patient = patient_for(actor, patient_id, "patient.edit")
    contact = EmergencyContact(tenant_id=patient.tenant_id, patient_id=patient.id, **_contact_values(values))
    db.session.add(contact)
    db.session.flush()
    _changed(actor, patient, ["emergency_contacts"], "emergency_contacts")
    return contact


def update_emergency_contact(
    actor: Actor, patient_id: int, contact_id: int | None, values: dict[str, Any]
) -> EmergencyContact:
    """Edit one of the patient's contacts; another patient's contact id is NotFound and changes nothing."""
    patient = patient_for(actor, patient_id, "patient.edit")
    contact = _contact_of(actor, patient, contact_id)
    cleaned = _contact_values(values)
    if all(getattr(contact, name) == value for name, value in cleaned.items()):
        db.session.rollback()
        return contact
    for name, value in cleaned.items():
        setattr(contact, name, value)
    _changed(actor, patient, ["emergency_contacts"], "emergency_contacts")
    return contact


def remove_emergency_contact(actor: Actor, patient_id: int, contact_id: int | None) -> None:
    patient = patient_for(actor, patient_id, "patient.edit")
    contact = _contact_of(actor, patient, contact_id)
    db.session.delete(contact)
    _changed(actor, patient, ["emergency_contacts"], "emergency_contacts")


# --- identity change requests ----------------------------------------------------------------------------


def _as_text(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _identity_values(patient: Patient, values: dict[str, Any]) -> dict[str, Any]:
    first = _cleaned_text(Patient, "first_name", values.get("first_name"), required="Enter a first name.")
    last = _cleaned_text(Patient, "last_name", values.get("last_name"), required="Enter a last name.")
    born = values.get("date_of_birth")
    if isinstance(born, str):
        try:
            born = date.fromisoformat(born.strip())
        except ValueError:
            raise ProfileError("Enter a date of birth in the past.", "date_of_birth") from None
    sex = values.get("sex") or None
    # The same rules as a staff edit of the profile (sex one of the list, a date of birth in the past).
    validate_patient(
        patient.tenant_id,
        {"sex": sex, "date_of_birth": born, "care_stage": patient.care_stage, "assigned_coach_id": None},
    )
    return {"first_name": first, "last_name": last, "date_of_birth": born, "sex": sex}


def _insert_pending(values: dict) -> int | None:
    """INSERT the request unless the patient has a pending one (the partial unique index decides, so two
    requests at once make one). Returns the new id, or None."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = ProfileChangeRequest.__table__
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["patient_id"], index_where=text("status = 'pending'"))
        .returning(table.c.id)
    )
    return db.session.scalar(statement)


def request_change(
    actor: Actor, patient_id: int, values: dict[str, Any], reason: str | None
) -> ProfileChangeRequest:
    """Ask the clinic to change identity fields; a second request while one is pending is refused."""
    patient = patient_for(actor, patient_id, "patient.edit")
    wanted = _identity_values(patient, values)
    changes = {
        name: {"from": _as_text(getattr(patient, name)), "to": _as_text(value)}
        for name, value in wanted.items()
        if getattr(patient, name) != value
    }
    if not changes:
        raise ProfileError("Change at least one of these; they match what the clinic has.", "first_name")
    reason = (reason or "").strip() or None
    if reason and len(reason) > REASON_MAX_CHARS:
        raise ProfileError(f"Keep the reason under {REASON_MAX_CHARS} characters.", "reason")
    new_id = _insert_pending(
        {
            "tenant_id": actor.tenant_id,
            "patient_id": patient.id,
            "changes": changes,
            "reason": reason,
            "status": PENDING,
            "requested_by_id": actor.user_id,
            "created_at": utcnow(),
        }
    )
    if new_id is None:
        db.session.rollback()
        raise ProfileError(
            "You already have a change waiting for the clinic. Withdraw it first to ask for another.",
            "first_name",
        )
    record_event(
        actor,
        "profile.change_request",
        resource_type="profile_change_request",
        resource_id=new_id,
        patient_id=patient.id,
        changed_fields=sorted(changes),
    )
    events.raise_event(actor, REQUESTED_KIND, patient_id=patient.id, subject=(TASK_KIND, new_id))
    events.commit()
    return get_scoped(ProfileChangeRequest, new_id, actor.tenant_id)


def _close_task(actor: Actor, request_id: int, note: str) -> None:
    """Complete the staff task opened for the request, in the decision's transaction."""
    complete_tasks_about(actor, TASK_KIND, TASK_KIND, request_id, note)


def withdraw_change(actor: Actor, patient_id: int, request_id: int | None) -> None:
    """The patient takes back their pending request; another patient's id is NotFound."""
    patient = patient_for(actor, patient_id, "patient.edit")
    withdrawn = db.session.execute(
        update(ProfileChangeRequest)
        .where(
            ProfileChangeRequest.id == request_id,
            ProfileChangeRequest.tenant_id == actor.tenant_id,
            ProfileChangeRequest.patient_id == patient.id,
            ProfileChangeRequest.status == PENDING,
        )
        .values(status=WITHDRAWN, decided_at=utcnow(), decided_by_id=actor.user_id)
        .execution_options(synchronize_session=False)
    )
    if withdrawn.rowcount != 1:
        db.session.rollback()
        exists = db.session.scalar(
            scoped(ProfileChangeRequest, actor.tenant_id).where(
                ProfileChangeRequest.id == request_id, ProfileChangeRequest.patient_id == patient.id
            )
        )
        if exists is None:
            raise NotFound("change request")
        raise Conflict("The clinic has already answered this request.")
    record_event(
        actor,
        "profile.change_withdraw",
        resource_type="profile_change_request",
        resource_id=request_id,
        patient_id=patient.id,
        changed_fields=["status"],
    )
    _close_task(actor, request_id, "Withdrawn by the patient.")
    events.raise_event(actor, WITHDRAWN_KIND, patient_id=patient.id, subject=(TASK_KIND, request_id))
    events.commit()


@dataclass
class ChangeQueue:
    pending: list[ProfileChangeRequest]
    decided: list[ProfileChangeRequest]


def change_queue(actor: Actor) -> ChangeQueue:
    """The clinic's pending requests (oldest first) and the latest decisions, audited as one read."""
    require(actor, "care.change_requests")
    base = scoped(ProfileChangeRequest, actor.tenant_id)
    pending = list(
        db.session.scalars(
            base.where(ProfileChangeRequest.status == PENDING).order_by(
                ProfileChangeRequest.created_at, ProfileChangeRequest.id
            )
        )
    )
    decided = list(
        db.session.scalars(
            base.where(ProfileChangeRequest.status.in_([APPROVED, REJECTED]))
            .order_by(ProfileChangeRequest.decided_at.desc(), ProfileChangeRequest.id.desc())
            .limit(RECENTLY_DECIDED)
        )
    )
    record_event(actor, "profile.change_queue", resource_type="profile_change_queue")
    db.session.commit()
    return ChangeQueue(pending, decided)


def _value_of(name: str, stored: str | None) -> Any:
    if name == "date_of_birth" and stored:
        return date.fromisoformat(stored)
    return stored


def decide_change(
    actor: Actor, request_id: int, decision: str | None, note: str | None
) -> ProfileChangeRequest:
    """Approve (the new values go onto the patient in the same transaction) or reject (with a note the
    patient reads) a pending request, once: of two people deciding at once, one decides and the other gets
    a Conflict (the guarded UPDATE finds it decided)."""
    require(actor, "care.change_requests")
    status = DECISIONS.get(decision or "")
    if status is None:
        raise ProfileError("Choose approve or reject.", "decision")
    note = (note or "").strip() or None
    if status == REJECTED and not note:
        raise ProfileError("Say why the change is not approved; the patient reads it.", "note")
    if note and len(note) > NOTE_MAX_CHARS:
        raise ProfileError(f"Keep the note under {NOTE_MAX_CHARS} characters.", "note")
    decided = db.session.execute(
        update(ProfileChangeRequest)
        .where(
            ProfileChangeRequest.id == request_id,
            ProfileChangeRequest.tenant_id == actor.tenant_id,
            ProfileChangeRequest.status == PENDING,
        )
        .values(status=status, decided_by_id=actor.user_id, decided_at=utcnow(), decision_note=note)
        .returning(ProfileChangeRequest.patient_id, ProfileChangeRequest.changes)
        .execution_options(synchronize_session=False)
    ).first()
    if decided is None:
        db.session.rollback()
        exists = db.session.scalar(
            scoped(ProfileChangeRequest, actor.tenant_id).where(ProfileChangeRequest.id == request_id)
        )
        if exists is None:
            raise NotFound("change request")
        raise Conflict("Someone decided this request already; the list shows their answer.")
    patient_id, changes = decided
    record_event(
        actor,
        "profile.change_approve" if status == APPROVED else "profile.change_reject",
        resource_type="profile_change_request",
        resource_id=request_id,
        patient_id=patient_id,
        changed_fields=["status", "decision_note"] if note else ["status"],
    )
    if status == APPROVED:
        patient = get_scoped(Patient, patient_id, actor.tenant_id)
        for name in IDENTITY_FIELDS:
            if name in changes:
                setattr(patient, name, _value_of(name, changes[name]["to"]))
        record_event(
            actor,
            "patient.update",
            resource_type="patient",
            resource_id=patient_id,
            patient_id=patient_id,
            changed_fields=sorted(name for name in IDENTITY_FIELDS if name in changes),
        )
    _close_task(actor, request_id, "Approved." if status == APPROVED else f"Not approved: {note}")
    events.raise_event(
        actor, DECIDED_KIND, patient_id=patient_id, subject=(TASK_KIND, request_id), status=status
    )
    events.commit()
    return get_scoped(ProfileChangeRequest, request_id, actor.tenant_id)


__all__ = [
    "CONTACT_FIELDS",
    "INSURANCE_FIELDS",
    "ChangeQueue",
    "ProfileError",
    "ProfileView",
    "add_emergency_contact",
    "change_queue",
    "decide_change",
    "profile_view",
    "remove_emergency_contact",
    "request_change",
    "update_details",
    "update_emergency_contact",
    "withdraw_change",
]
