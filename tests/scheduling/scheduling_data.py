"""Shared builders for the scheduling tests: a clinic in Europe/Berlin with a doctor and a nurse who take
appointments (weekdays 09:00–12:00 and 13:00–17:00), a front desk, a coach, two patients with portal accounts,
and two appointment types. Tests fix the clock with `at(...)` (time-machine): they pass on any date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

import time_machine

from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.scheduling.models import IN_PERSON, VIDEO, AppointmentType, WeeklyHours
from tests.factories import make_patient, make_portal_user, make_tenant, make_user

ZONE = "Europe/Berlin"
# A Monday, 07:00 UTC = 08:00 in Berlin (winter time): the tests' "now".
MONDAY_8AM = datetime(2031, 1, 6, 7, 0, tzinfo=UTC)


def at(moment: datetime):
    """Travel to `moment` (aware) for the block, the clock not ticking."""
    return time_machine.travel(moment, tick=False)


def utc(*args) -> datetime:
    """A naive UTC datetime, as the database keeps them."""
    return datetime(*args)


@dataclass
class Clinic:
    tenant: object
    doctor: object
    nurse: object
    desk: object
    coach: object
    admin: object
    patient: object
    user: object
    other_patient: object
    other_user: object
    video: AppointmentType  # 30 min, 5 min buffers, 24 h cut-offs
    checkup: AppointmentType  # 20 min in person, no buffers, 2 h cut-offs

    def actor(self, user=None) -> Actor:
        user = user or self.user
        return Actor(tenant_id=self.tenant.id, user_id=user.id, role=user.role)


def weekly(tenant, provider, days=range(5), intervals=((time(9), time(12)), (time(13), time(17)))) -> None:
    for day in days:
        for starts, ends in intervals:
            db.session.add(
                WeeklyHours(
                    tenant_id=tenant.id, provider_id=provider.id, weekday=day, starts=starts, ends=ends
                )
            )


def make_clinic(name: str = "Lindenhof Praxis", *, zone: str = ZONE) -> Clinic:
    tenant = make_tenant(name, timezone=zone, phone="+49 30 1234567")
    doctor = make_user(tenant, "doctor", full_name=f"Dr. Weber ({name})")
    nurse = make_user(tenant, "nurse", full_name=f"Nurse Koch ({name})")
    desk = make_user(tenant, "front_desk", full_name=f"Desk ({name})")
    coach = make_user(tenant, "coach", full_name=f"Coach ({name})")
    admin = make_user(tenant, "admin", full_name=f"Admin ({name})")
    patient = make_patient(tenant, first_name="Mara", last_name="Lenz", assigned_coach_id=coach.id)
    other = make_patient(tenant, first_name="Jonas", last_name="Berg")
    user = make_portal_user(patient)
    other_user = make_portal_user(other)
    video = AppointmentType(
        tenant_id=tenant.id,
        name="Video follow-up",
        duration_minutes=30,
        mode=VIDEO,
        video_link="https://video.example.test/room/lindenhof",
        preparation="Find a quiet room and have your medication list at hand.",
        buffer_before_minutes=5,
        buffer_after_minutes=5,
        patient_bookable=True,
        min_notice_minutes=120,
        horizon_days=28,
        reschedule_cutoff_minutes=1440,
        cancel_cutoff_minutes=1440,
    )
    checkup = AppointmentType(
        tenant_id=tenant.id,
        name="Check-up",
        duration_minutes=20,
        mode=IN_PERSON,
        buffer_before_minutes=0,
        buffer_after_minutes=0,
        patient_bookable=True,
        min_notice_minutes=60,
        horizon_days=28,
        reschedule_cutoff_minutes=120,
        cancel_cutoff_minutes=120,
    )
    db.session.add_all([video, checkup])
    db.session.flush()
    weekly(tenant, doctor)
    weekly(tenant, nurse)
    db.session.commit()
    return Clinic(tenant, doctor, nurse, desk, coach, admin, patient, user, other, other_user, video, checkup)
