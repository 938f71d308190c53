"""Allergies and immunizations, kept per patient (so they can later be shared as record types)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import clinic_today
from ..errors import NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..tenancy import get_scoped
from .models import ALLERGY_SEVERITIES, ALLERGY_STATUSES, Allergy, Immunization
from .services import RecordError


@dataclass(frozen=True)
class AllergyInput:
    substance: str
    reaction: str
    severity: str
    status: str = "active"


@dataclass(frozen=True)
class ImmunizationInput:
    vaccine: str
    given_on: date
    dose_number: int | None = None
    lot: str = ""
    site: str = ""
    given_by: str = ""


def _patient(actor: Actor, patient_id: int) -> Patient:
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    return patient


def patient_allergies(actor: Actor, patient: Patient) -> list[Allergy]:
    require(actor, "clinical.read")
    return list(
        db.session.scalars(
            select(Allergy)
            .where(Allergy.tenant_id == actor.tenant_id, Allergy.patient_id == patient.id)
            .order_by(Allergy.status, Allergy.substance)
        )
    )


def patient_immunizations(actor: Actor, patient: Patient) -> list[Immunization]:
    require(actor, "clinical.read")
    return list(
        db.session.scalars(
            select(Immunization)
            .where(Immunization.tenant_id == actor.tenant_id, Immunization.patient_id == patient.id)
            .order_by(Immunization.given_on.desc())
        )
    )


def add_allergy(actor: Actor, patient_id: int, data: AllergyInput) -> Allergy:
    require(actor, "record.write")
    patient = _patient(actor, patient_id)
    if not data.substance.strip():
        raise RecordError("Enter the substance.", "substance")
    if data.severity not in ALLERGY_SEVERITIES:
        raise RecordError("Choose a severity.", "severity")
    if data.status not in ALLERGY_STATUSES:
        raise RecordError("Choose a status.", "status")
    allergy = Allergy(
        tenant_id=actor.tenant_id,
        patient_id=patient.id,
        substance=data.substance.strip(),
        reaction=data.reaction.strip() or None,
        severity=data.severity,
        status=data.status,
        recorded_by_id=actor.user_id,
    )
    db.session.add(allergy)
    db.session.flush()
    record_event(
        actor,
        "allergy.create",
        resource_type="allergy",
        resource_id=allergy.id,
        patient_id=patient.id,
        changed_fields=["substance", "reaction", "severity", "status"],
    )
    db.session.commit()
    return allergy


def add_immunization(actor: Actor, patient_id: int, data: ImmunizationInput) -> Immunization:
    require(actor, "record.write")
    patient = _patient(actor, patient_id)
    if not data.vaccine.strip():
        raise RecordError("Enter the vaccine.", "vaccine")
    if data.given_on > clinic_today(db.session.get(Tenant, actor.tenant_id).timezone):
        raise RecordError("The date cannot be in the future.", "given_on")
    if data.dose_number is not None and not 1 <= data.dose_number <= 10:
        raise RecordError("The dose number is between 1 and 10.", "dose_number")
    immunization = Immunization(
        tenant_id=actor.tenant_id,
        patient_id=patient.id,
        vaccine=data.vaccine.strip(),
        given_on=data.given_on,
        dose_number=data.dose_number,
        lot=data.lot.strip() or None,
        site=data.site.strip() or None,
        given_by=data.given_by.strip() or None,
        recorded_by_id=actor.user_id,
    )
    db.session.add(immunization)
    db.session.flush()
    record_event(
        actor,
        "immunization.create",
        resource_type="immunization",
        resource_id=immunization.id,
        patient_id=patient.id,
        changed_fields=["vaccine", "given_on", "dose_number", "lot", "site", "given_by"],
    )
    db.session.commit()
    return immunization
