"""Demo data for the care side of the portal: the clinic's phone, address and hours, the default care-stage
rules, and a handful of open tasks (some overdue, some claimed, one waiting on the patient, one done)."""

from __future__ import annotations

import random
from datetime import timedelta

from ..accounts.models import COACH, NURSE, Tenant, User
from ..care import stages, targets
from ..care.models import DONE, OPEN, WAITING, Task
from ..clock import utcnow
from ..extensions import db
from ..patients.models import Patient

CLINIC_DETAILS = {
    "riverside": (
        "+1 (555) 014-2200",
        "410 River Street, Springfield, IL 62701",
        {**{str(day): [["08:00", "17:30"]] for day in range(5)}, "5": [["09:00", "12:00"]]},
    ),
    "lakeside": (
        "+1 (555) 018-7300",
        "12 Lakeshore Drive, Suite 300, Madison, WI 53703",
        {str(day): [["07:30", "16:00"]] for day in range(5)},
    ),
}
# (kind, title, hours ago it came in, pool or person, status, overdue by hours: whatever day the demo is
# made on, these two are late)
TASKS = (
    ("message", "Answer a message about a medication question", 2, "pool", OPEN, None),
    ("message", "Answer a message about a lab result", 30, "coach", OPEN, 3),
    ("refill", "Review a refill request", 70, "pool", OPEN, 20),
    ("document", "Look at an uploaded document", 5, "nurse", OPEN, None),
    ("profile_change", "Review a change of address", 50, "pool", WAITING, None),
    ("message", "Answer a message about a follow-up visit", 120, "coach", DONE, None),
)
POOL = (["nurse", "coach"], "Care team")


def seed(tenant: Tenant, patients: list[Patient], staff: dict[str, User], rng: random.Random) -> list[Task]:
    """Add the clinic's details, its stage rules and its open tasks; flushes, does not commit."""
    phone, address, hours = CLINIC_DETAILS.get(tenant.slug, next(iter(CLINIC_DETAILS.values())))
    tenant.phone, tenant.address, tenant.hours = phone, address, hours
    db.session.flush()
    stages.ensure_default_rules(tenant.id)
    now = utcnow()
    chosen = rng.sample(patients, k=min(len(patients), len(TASKS)))
    tasks = []
    for patient, (kind, title, hours_ago, owner, status, late) in zip(chosen, TASKS, strict=False):
        created = now - timedelta(hours=hours_ago)
        assignee = staff[COACH] if owner == "coach" else staff[NURSE] if owner == "nurse" else None
        task = Task(
            tenant_id=tenant.id,
            patient_id=patient.id,
            kind=kind,
            title=title,
            link=f"/patients/{patient.id}",
            assignee_id=assignee.id if assignee else None,
            pool_roles=None if assignee else POOL[0],
            pool_name=None if assignee else POOL[1],
            status=status,
            due_at=now - timedelta(hours=late) if late else targets.due_time(tenant, kind, created),
            created_at=created,
            claimed_at=created + timedelta(minutes=20) if assignee else None,
        )
        if status == WAITING:
            task.paused_at = now - timedelta(hours=1)
            task.remaining_minutes = 4 * 60
        if status == DONE:
            task.completed_at = created + timedelta(hours=3)
            task.completed_by_id = assignee.id if assignee else staff[NURSE].id
            task.completion_note = "Answered by phone; the patient is happy with the plan."
        tasks.append(task)
    db.session.add_all(tasks)
    db.session.flush()
    return tasks
