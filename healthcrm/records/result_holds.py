"""Results reach the patient at once (the US information-blocking rule); a clinician may hold one result
back, with a reason and an end date no later than the clinic's maximum, and release it early.

A result becomes visible to the patient when it is saved (not held), when a hold is released early, or when
its hold's end date comes (computed from the date on every read: records/patient_view.py). Each of these
raises the portal event "result.released"; its handler tells the patient "You have a new result" (no
health information). A hold that simply runs out changes nothing in the data, so the periodic sweep
`release_expired_holds` (jobs/periodic.py, hourly) marks it released and raises the event: the patient
sees the result from the morning of the end date, and is told within the hour.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import url_for
from sqlalchemy import select, update

from ..accounts.models import PATIENT, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import clinic_today, utcnow
from ..errors import NotFound
from ..extensions import db
from ..permissions import require
from ..portal import events
from ..portal.models import PortalEvent
from ..portal.notifications import notify
from ..tenancy import get_scoped, scoped
from .labs import RESULT_RELEASED
from .models import LabResult
from .services import RecordError

RELEASED = RESULT_RELEASED
MAX_REASON = 500
RECENT_RESULTS = 10  # shown with their release state on the staff patient page


def raise_released(
    actor: Actor, patient_id: int, results: list[LabResult], tenant_id: int | None = None
) -> None:
    """Raise one "result.released" event for results that just became visible to the patient (inside the
    caller's transaction; the caller commits with `events.commit()`)."""
    if results:
        events.raise_event(
            actor,
            RELEASED,
            patient_id=patient_id,
            tenant_id=tenant_id,
            subject=("lab_result", results[0].id),
            count=len(results),
        )


@events.handles(RELEASED)
def _tell_the_patient(event: PortalEvent) -> None:
    user_id = db.session.scalar(
        select(User.id).where(
            User.tenant_id == event.tenant_id,
            User.patient_id == event.patient_id,
            User.role == PATIENT,
            User.active.is_(True),
        )
    )
    if user_id is not None:
        notify(event, user_id, "result", "You have a new result", _results_link())


def _results_link() -> str | None:
    try:
        return url_for("portal_records.labs")
    except RuntimeError:  # outside a request (a worker): the path as the blueprint registers it
        return "/portal/records/results"


def _clinic(tenant_id: int) -> Tenant:
    return db.session.get(Tenant, tenant_id)


def _result(actor: Actor, result_id: int, patient_id: int | None = None) -> LabResult:
    result = get_scoped(LabResult, result_id, actor.tenant_id)
    if result is None or (patient_id is not None and result.patient_id != patient_id):
        raise NotFound(result_id)
    return result


def result_for_hold(actor: Actor, result_id: int) -> LabResult:
    """The result the hold form shows (its test, value and time), audited as a read of it (committed)."""
    require(actor, "result.hold")
    result = _result(actor, result_id)
    record_event(
        actor, "lab.view", resource_type="lab_result", resource_id=result.id, patient_id=result.patient_id
    )
    db.session.commit()
    return result


def hold_result(
    actor: Actor, result_id: int, reason: str, until: date | None, patient_id: int | None = None
) -> LabResult:
    """Hold one result back from the patient until `until` (a clinic date: it shows that day), for `reason`.

    RecordError (with its field) for a missing reason, a date not after today, or a date beyond the
    clinic's longest hold; nothing changes then. Holding a held result again replaces its hold.
    """
    require(actor, "result.hold")
    result = _result(actor, result_id, patient_id)
    clinic = _clinic(actor.tenant_id)
    today = clinic_today(clinic.timezone)
    reason = (reason or "").strip()
    if not reason:
        raise RecordError("Say why the result is held (the patient's clinicians read it).", "reason")
    if len(reason) > MAX_REASON:
        raise RecordError(f"At most {MAX_REASON} characters.", "reason")
    if until is None:
        raise RecordError("Enter the date the result is released.", "until")
    if until <= today:
        raise RecordError("The release date must be after today.", "until")
    longest = clinic.result_hold_max_days
    if (until - today).days > longest:
        raise RecordError(
            f"A result can be held for at most {longest} days at this clinic: choose a date no later than "
            f"{today + timedelta(days=longest):%d %b %Y}.",
            "until",
        )
    result.hold_until = until
    result.hold_reason = reason
    result.held_by_id = actor.user_id
    result.held_at = utcnow()
    result.hold_released_at = None
    record_event(
        actor,
        "result.hold",
        resource_type="lab_result",
        resource_id=result.id,
        patient_id=result.patient_id,
        changed_fields=["hold_until", "hold_reason", "held_by_id", "held_at"],
    )
    db.session.commit()
    return result


def release_result(actor: Actor, result_id: int, patient_id: int | None = None) -> LabResult:
    """Release a held result now (the patient is told). A result not held: RecordError, nothing changes."""
    require(actor, "result.hold")
    result = _result(actor, result_id, patient_id)
    # Guarded: two releases at once notify once.
    claimed = db.session.execute(
        update(LabResult)
        .where(
            LabResult.id == result.id,
            LabResult.tenant_id == actor.tenant_id,
            LabResult.hold_until > clinic_today(_clinic(actor.tenant_id).timezone),
            LabResult.hold_released_at.is_(None),
        )
        .values(hold_released_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise RecordError("This result is not held: the patient can see it already.", "form")
    db.session.refresh(result)
    record_event(
        actor,
        "result.release",
        resource_type="lab_result",
        resource_id=result.id,
        patient_id=result.patient_id,
        changed_fields=["hold_released_at"],
    )
    raise_released(actor, result.patient_id, [result])
    events.commit()
    return result


def recent_results(actor: Actor, patient_id: int) -> list[LabResult]:
    """The patient's latest results with their release state (the staff patient page)."""
    require(actor, "lab.read")
    return list(
        db.session.scalars(
            scoped(LabResult, actor.tenant_id)
            .where(LabResult.patient_id == patient_id)
            .order_by(LabResult.observed_at.desc(), LabResult.id.desc())
            .limit(RECENT_RESULTS)
        )
    )


def release_expired_holds() -> str:
    """Mark holds whose end date has come as released and tell each patient (the hourly sweep)."""
    # The sweep crosses clinics on purpose: each clinic's day is its own, each release within its clinic.
    held = db.session.execute(
        select(LabResult.id, LabResult.tenant_id, LabResult.patient_id, LabResult.hold_until)
        .where(LabResult.hold_until.is_not(None), LabResult.hold_released_at.is_(None))
        .order_by(LabResult.id)
        .execution_options(all_tenants=True)
    ).all()
    zones = {}
    released = 0
    for result_id, tenant_id, patient_id, until in held:
        if tenant_id not in zones:
            zones[tenant_id] = clinic_today(_clinic(tenant_id).timezone)
        if until > zones[tenant_id]:
            continue
        claimed = db.session.execute(
            update(LabResult)
            .where(
                LabResult.id == result_id,
                LabResult.tenant_id == tenant_id,
                LabResult.hold_released_at.is_(None),
            )
            .values(hold_released_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            db.session.rollback()
            continue
        actor = Actor.system(tenant_id)
        record_event(
            actor,
            "result.hold_ended",
            resource_type="lab_result",
            resource_id=result_id,
            patient_id=patient_id,
            changed_fields=["hold_released_at"],
        )
        events.raise_event(actor, RELEASED, patient_id=patient_id, subject=("lab_result", result_id), count=1)
        events.commit()
        released += 1
    db.session.rollback()
    return f"{released} held results released"
