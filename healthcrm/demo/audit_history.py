"""Sixteen months of who looked at what, for the demo clinics: the audit viewer has weeks to filter, the
archive step has old months to move out of the hot table, and the demo patient's "Who has seen my record"
lists staff, an outside cardiologist (through an expired share link) and the patient themselves.

The events are appended to the clinic's chain like any other (`record_event`), with the time they would
have happened: after the demo's own "now" events in id order, each one chained to the one before it.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from ..accounts.models import ADMIN, COACH, DOCTOR, NURSE, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..extensions import db
from ..patients.models import Patient
from ..sharing.models import EVENT_OPEN, EVENT_VIEW, SCOPE_ALL, ShareEvent, ShareLink

HISTORY_DAYS = 16 * 31
DEMO_IPS = ("10.20.1.14", "10.20.1.22", "10.20.1.31", "10.20.2.7")
STAFF_BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36"
PHONE_BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148 Safari/604.1"
PROVIDER_BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15"

# (role, action, resource type) of a staff member's look at a patient, with its weight.
STAFF_LOOKS = [
    (DOCTOR, "patient.view", "patient", 5),
    (DOCTOR, "record.view", "record", 4),
    (DOCTOR, "lab.view", "lab_result", 3),
    (NURSE, "patient.view", "patient", 3),
    (NURSE, "lab.view", "lab_result", 2),
    (COACH, "patient.view", "patient", 2),
    (ADMIN, "patient.view", "patient", 1),
]


def seed(
    tenant: Tenant,
    patients: list[Patient],
    staff: dict[str, User],
    portal_user: User | None,
    rng: random.Random,
    now: datetime | None = None,
) -> int:
    """Append the history and return how many events it wrote (no commit)."""
    now = now or utcnow()
    start = now - timedelta(days=HISTORY_DAYS)
    main = next((p for p in patients if portal_user and p.id == portal_user.patient_id), patients[0])
    planned: list[tuple[datetime, Actor, str, str, int | None, int]] = []
    looks = [look for look in STAFF_LOOKS for _ in range(look[3])]
    for patient in patients[:12]:
        visits = 150 if patient.id == main.id else rng.randint(8, 20)
        for _ in range(visits):
            role, action, kind, _ = rng.choice(looks)
            user = staff[role]
            at = _working_hours(start + timedelta(days=rng.uniform(0, HISTORY_DAYS - 1)), rng)
            actor = Actor(
                tenant_id=tenant.id,
                user_id=user.id,
                role=role,
                ip=rng.choice(DEMO_IPS),
                user_agent=STAFF_BROWSER,
                request_id=f"demo-{rng.getrandbits(48):012x}",
            )
            resource = patient.id if kind == "patient" else None
            planned.append((at, actor, action, kind, resource, patient.id))
    if portal_user is not None:
        planned += _patient_looks(tenant, main, portal_user, start, rng)
        planned += _cardiologist(tenant, main, portal_user, now, rng)
    planned.sort(key=lambda item: item[0])
    for at, actor, action, kind, resource, patient_id in planned:
        record_event(
            actor, action, resource_type=kind, resource_id=resource, patient_id=patient_id, occurred_at=at
        )
    return len(planned)


def _working_hours(day: datetime, rng: random.Random) -> datetime:
    return day.replace(hour=rng.randint(13, 21), minute=rng.randint(0, 59), second=rng.randint(0, 59))


def _patient_looks(tenant: Tenant, patient: Patient, user: User, start: datetime, rng: random.Random):
    looks = [("portal.records_view", None), ("portal.labs_view", None), ("portal.home.view", None)]
    planned = []
    for _ in range(18):
        action, _resource = rng.choice(looks)
        at = start + timedelta(days=rng.uniform(0, HISTORY_DAYS - 1), hours=rng.uniform(0, 23))
        actor = Actor(
            tenant_id=tenant.id,
            user_id=user.id,
            role="patient",
            ip="203.0.113.40",
            user_agent=PHONE_BROWSER,
            request_id=f"demo-{rng.getrandbits(48):012x}",
        )
        planned.append((at, actor, action, "patient", patient.id, patient.id))
    return planned


def _cardiologist(tenant: Tenant, patient: Patient, user: User, now: datetime, rng: random.Random):
    """An expired share link the patient made five months ago for a second opinion, opened twice."""
    created = (now - timedelta(days=150)).replace(hour=18, minute=5, second=0, microsecond=0)
    opened = [created + timedelta(days=1, hours=-2), created + timedelta(days=6, hours=-4)]
    share = ShareLink(
        tenant_id=tenant.id,
        patient_id=patient.id,
        created_by_id=user.id,
        recipient_name="Dr. Ana Ortiz (Heart Partners Cardiology)",
        recipient_email="a.ortiz@heart-partners.example",
        message="A second opinion on my blood pressure, as we discussed.",
        scope=SCOPE_ALL,
        allow_download=False,
        opens=len(opened),
        expires_at=created + timedelta(days=14),
        first_opened_at=opened[0],
        last_access_at=opened[-1] + timedelta(minutes=7),
        created_at=created,
    )
    db.session.add(share)
    db.session.flush()
    patient_actor = Actor(
        tenant_id=tenant.id, user_id=user.id, role="patient", ip="203.0.113.40", user_agent=PHONE_BROWSER
    )
    planned = [(created, patient_actor, "share.create", "share", share.id, patient.id)]
    for at in opened:
        provider = Actor(
            tenant_id=tenant.id,
            role="provider",
            share_link_id=share.id,
            ip="198.51.100.23",
            user_agent=PROVIDER_BROWSER,
            request_id=f"demo-{rng.getrandbits(48):012x}",
        )
        steps = ((EVENT_OPEN, 0, None), (EVENT_VIEW, 3, "Records"), (EVENT_VIEW, 7, "Labs"))
        for kind, offset, detail in steps:
            when = at + timedelta(minutes=offset)
            db.session.add(
                ShareEvent(
                    tenant_id=tenant.id, share_id=share.id, kind=kind, detail=detail,
                    ip=provider.ip, user_agent=PROVIDER_BROWSER, occurred_at=when,
                )
            )  # fmt: skip
            planned.append((when, provider, f"share.{kind}", "share", share.id, patient.id))
    return planned
