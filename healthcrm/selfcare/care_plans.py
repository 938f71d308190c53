"""Care plans: staff write goals and instructions; each save is a new version (older ones stay); the patient
reads the current version and acknowledges it; staff see who acknowledged which version and when.

Events: "care_plan.published" (the patient is notified) and "care_plan.acknowledged" (a task for the
patient's coach, or the care-plan writers' pool when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..errors import Conflict, NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..portal import events
from ..tenancy import get_scoped, scoped
from .clinic import SelfCareError, patient_for
from .models import CarePlanAcknowledgement, CarePlanVersion

TEXT_MAX_CHARS = 10_000


@dataclass
class CarePlan:
    patient: Patient
    versions: list[CarePlanVersion]  # newest first

    @property
    def current(self) -> CarePlanVersion | None:
        return self.versions[0] if self.versions else None

    def acknowledged_by(
        self, version: CarePlanVersion, user_id: int | None
    ) -> CarePlanAcknowledgement | None:
        return next((a for a in version.acknowledgements if a.user_id == user_id), None)


def _versions(tenant_id: int, patient_id: int) -> list[CarePlanVersion]:
    return list(
        db.session.scalars(
            scoped(CarePlanVersion, tenant_id)
            .where(CarePlanVersion.patient_id == patient_id)
            .options(
                selectinload(CarePlanVersion.acknowledgements).selectinload(CarePlanAcknowledgement.user),
                selectinload(CarePlanVersion.author),
            )
            .order_by(CarePlanVersion.number.desc())
        )
    )


def current_version(tenant_id: int, patient_id: int) -> CarePlanVersion | None:
    return db.session.scalar(
        scoped(CarePlanVersion, tenant_id)
        .where(CarePlanVersion.patient_id == patient_id)
        .order_by(CarePlanVersion.number.desc())
        .limit(1)
    )


def care_plan(actor: Actor, patient_id: int) -> CarePlan:
    """The patient's care plan with every version (patients read only the current one), audited."""
    patient = patient_for(actor, patient_id)
    versions = _versions(actor.tenant_id, patient.id)
    if actor.role == "patient":
        versions = versions[:1]
    record_event(
        actor,
        "care_plan.view",
        resource_type="care_plan_version" if versions else "patient",
        resource_id=versions[0].id if versions else patient.id,
        patient_id=patient.id,
    )
    db.session.commit()
    return CarePlan(patient, versions)


def _clean(value: str | None, field: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise SelfCareError(f"Write the {what}.", field)
    if len(value) > TEXT_MAX_CHARS:
        raise SelfCareError(f"Keep the {what} under {TEXT_MAX_CHARS:,} characters.", field)
    return value


def publish_version(
    actor: Actor, patient_id: int, *, goals: str | None, instructions: str | None, based_on: int | None
) -> CarePlanVersion:
    """Save the plan as the next version. `based_on` is the version number the editor started from (0 for
    none): when someone saved another version meanwhile, this is a Conflict and nothing is saved."""
    require(actor, "care.care_plans")
    patient = patient_for(actor, patient_id, "care.care_plans")
    goals = _clean(goals, "goals", "goals")
    instructions = _clean(instructions, "instructions", "instructions")
    latest = current_version(actor.tenant_id, patient.id)
    latest_number = latest.number if latest else 0
    if (based_on or 0) != latest_number:
        raise Conflict(f"Version {latest_number} was saved while you were writing. Reload it and edit that.")
    if latest and latest.goals == goals and latest.instructions == instructions:
        raise SelfCareError("Nothing changed since the current version.", "goals")
    # The unique key on (patient, number) decides between two editors saving at once.
    inserted = insert_unless_exists(
        CarePlanVersion,
        {
            "tenant_id": actor.tenant_id,
            "patient_id": patient.id,
            "number": latest_number + 1,
            "goals": goals,
            "instructions": instructions,
            "author_id": actor.user_id,
            "created_at": utcnow(),
        },
        ["patient_id", "number"],
    )
    if not inserted:
        db.session.rollback()
        raise Conflict(
            f"Someone saved version {latest_number + 1} at the same moment. Reload it and edit that."
        )
    version = db.session.scalar(
        scoped(CarePlanVersion, actor.tenant_id).where(
            CarePlanVersion.patient_id == patient.id, CarePlanVersion.number == latest_number + 1
        )
    )
    record_event(
        actor,
        "care_plan.publish",
        resource_type="care_plan_version",
        resource_id=version.id,
        patient_id=patient.id,
        changed_fields=["goals", "instructions"],
    )
    events.raise_event(
        actor,
        "care_plan.published",
        patient_id=patient.id,
        subject=("care_plan", version.id),
        number=version.number,
    )
    events.commit()
    return version


def acknowledge(actor: Actor, patient_id: int, version_id: int | None) -> CarePlanAcknowledgement:
    """The patient says they read the current version (once; a second time changes nothing). Another
    patient's version is NotFound; an older version than the current is a SelfCareError."""
    patient = patient_for(actor, patient_id)
    version = get_scoped(CarePlanVersion, version_id, actor.tenant_id)
    if version is None or version.patient_id != patient.id:
        raise NotFound("care plan")
    latest = current_version(actor.tenant_id, patient.id)
    if latest is None or latest.id != version.id:
        raise SelfCareError(
            "Your care team has changed the plan since; read the new version first.", "version_id"
        )
    inserted = insert_unless_exists(
        CarePlanAcknowledgement,
        {
            "tenant_id": actor.tenant_id,
            "version_id": version.id,
            "patient_id": patient.id,
            "user_id": actor.user_id,
            "acknowledged_at": utcnow(),
        },
        ["version_id", "user_id"],
    )
    ack = db.session.scalar(
        scoped(CarePlanAcknowledgement, actor.tenant_id).where(
            CarePlanAcknowledgement.version_id == version.id, CarePlanAcknowledgement.user_id == actor.user_id
        )
    )
    if inserted:
        record_event(
            actor,
            "care_plan.acknowledge",
            resource_type="care_plan_version",
            resource_id=version.id,
            patient_id=patient.id,
        )
        events.raise_event(
            actor,
            "care_plan.acknowledged",
            patient_id=patient.id,
            subject=("care_plan", version.id),
            number=version.number,
        )
    events.commit()
    return ack


def unacknowledged_version(tenant_id: int, patient_id: int, user_id: int) -> CarePlanVersion | None:
    """The current version when `user_id` has not acknowledged it (the dashboard's "a care plan to read")."""
    latest = current_version(tenant_id, patient_id)
    if latest is None:
        return None
    acked = db.session.scalar(
        select(func.count())
        .select_from(CarePlanAcknowledgement)
        .where(
            CarePlanAcknowledgement.tenant_id == tenant_id,
            CarePlanAcknowledgement.version_id == latest.id,
            CarePlanAcknowledgement.user_id == user_id,
        )
    )
    return None if acked else latest
