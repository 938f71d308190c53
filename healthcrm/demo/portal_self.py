"""Demo self-service activity for the patients with portal accounts: two refill requests (one waiting, one
approved), a week of symptom entries and dose marks, and a care plan waiting to be acknowledged."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select

from ..accounts.models import ADMIN, COACH, DOCTOR, Tenant, User
from ..audit.services import Actor
from ..clock import clinic_today, local_to_utc, utcnow
from ..extensions import db
from ..patients.models import Patient
from ..portal import events
from ..selfcare.models import APPROVED, PENDING, CarePlanVersion, DoseMark, RefillRequest, SymptomEntry
from ..selfcare.schedule import current_prescriptions

SYMPTOMS = ("fatigue", "pain", "nausea")


def _scheduled_current(tenant: Tenant, patient: Patient, today) -> list:
    return [c for c in current_prescriptions(tenant.id, patient.id, tenant.timezone, today) if c.schedule]


def _refills(tenant, patient, user, doctor, currents, patient_actor, now) -> None:
    """One approved request (already read) and one waiting, with its event (a task for the refill pool)."""
    approved = RefillRequest(
        tenant_id=tenant.id,
        patient_id=patient.id,
        prescription_id=currents[0].id,
        status=APPROVED,
        note="Nearly out",
        requested_by_id=user.id,
        requested_at=now - timedelta(days=6),
        decided_by_id=doctor.id,
        decided_at=now - timedelta(days=5),
        decision_reason="Sent to your pharmacy.",
        patient_seen_at=now - timedelta(days=5),
    )
    pending = RefillRequest(
        tenant_id=tenant.id,
        patient_id=patient.id,
        prescription_id=currents[-1].id,
        status=PENDING,
        note="Travelling next week",
        requested_by_id=user.id,
        requested_at=now - timedelta(hours=3),
    )
    db.session.add_all([approved, pending])
    db.session.flush()
    events.raise_event(
        patient_actor, "refill.requested", patient_id=patient.id, subject=("refill", pending.id)
    )


def seed(tenant: Tenant, patients: list[Patient], staff: dict[str, User], rng: random.Random) -> None:
    """Add the activity (flushes, does not commit); `seed_demo` queues the handling of the events raised."""
    today = clinic_today(tenant.timezone)
    doctor, coach = staff[DOCTOR], staff.get(COACH, staff[ADMIN])
    portal_users = db.session.scalars(
        select(User).where(User.tenant_id == tenant.id, User.patient_id.is_not(None)).order_by(User.id)
    ).all()
    for user in portal_users:
        patient = db.session.scalar(
            select(Patient).where(Patient.tenant_id == tenant.id, Patient.id == user.patient_id)
        )
        currents = _scheduled_current(tenant, patient, today)
        patient_actor = Actor(tenant_id=tenant.id, user_id=user.id, role="patient")
        now = utcnow()
        if currents:
            _refills(tenant, patient, user, doctor, currents, patient_actor, now)
        for back in range(7):
            day = today - timedelta(days=back)
            for symptom in rng.sample(SYMPTOMS, 2):
                at = local_to_utc(
                    datetime(day.year, day.month, day.day, rng.randint(7, 20), 0),  # noqa: DTZ001
                    tenant.timezone,
                )
                if at > now:
                    continue
                db.session.add(
                    SymptomEntry(
                        tenant_id=tenant.id,
                        patient_id=patient.id,
                        symptom=symptom,
                        severity=rng.randint(1, 7),
                        occurred_at=at,
                        recorded_by_id=user.id,
                    )
                )
            if back == 0:
                continue  # today's doses are the demo's to mark
            for current in currents:
                for slot in current.schedule:
                    if day < current.starts:
                        continue
                    db.session.add(
                        DoseMark(
                            tenant_id=tenant.id,
                            patient_id=patient.id,
                            prescription_id=current.id,
                            dose_day=day,
                            slot=slot,
                            status="taken" if rng.random() < 0.85 else "missed",
                            marked_by_id=user.id,
                        )
                    )
        version = CarePlanVersion(
            tenant_id=tenant.id,
            patient_id=patient.id,
            number=1,
            author_id=coach.id,
            goals="Walk 30 minutes on most days.\nTake your medicines at the same times every day.",
            instructions="Log how you feel each evening.\nCall the clinic if a symptom reaches 8 of 10.",
        )
        db.session.add(version)
        db.session.flush()
        events.raise_event(
            Actor(tenant_id=tenant.id, user_id=coach.id, role=coach.role),
            "care_plan.published",
            patient_id=patient.id,
            subject=("care_plan", version.id),
            number=1,
        )
    db.session.flush()
