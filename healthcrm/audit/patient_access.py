"""Who has seen my record: every access to one patient's data, as the patient reads it.

From the clinic's audit log: events with this patient's id, by clinic staff (name and role), by outside
providers through a share link (the recipient's name and email), and by the patient. Left out: the system's
own work (reminders, sweeps: nobody looked), sign-in events, and the patient opening this very page (it would
fill the list with itself; it is audited all the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..extensions import db
from .labels import action_label, own_action_label, role_label
from .models import AuditEvent
from .services import Actor, describe_events, record_event

PAGE_SIZE = 30
WHO = {"staff": "Clinic staff", "provider": "Outside providers", "you": "You"}
VIEW_ACTION = "portal.access_view"
NOT_AN_ACCESS = ("system", None)


@dataclass(frozen=True)
class Access:
    event_id: int
    occurred_at: object
    who: str
    detail: str
    kind: str  # staff | provider | you
    what: str
    outcome: str  # empty when it went through; "Refused" or "Failed" otherwise


def _kind(event: AuditEvent) -> str:
    if event.actor_share_link_id:
        return "provider"
    if event.actor_role == "patient":
        return "you"
    return "staff"


def accesses(actor: Actor, patient_id: int, *, who: str = "", before: int | None = None) -> list[Access]:
    """A page of accesses to the patient's data, newest first (one more than PAGE_SIZE: is there more?);
    the viewing is audited in the caller's transaction."""
    query = select(AuditEvent).where(
        AuditEvent.tenant_id == actor.tenant_id,
        AuditEvent.patient_id == patient_id,
        AuditEvent.action != VIEW_ACTION,
        AuditEvent.actor_role.is_not(None),
        AuditEvent.actor_role != "system",
    )
    if who == "provider":
        query = query.where(AuditEvent.actor_share_link_id.is_not(None))
    elif who == "you":
        query = query.where(AuditEvent.actor_role == "patient")
    elif who == "staff":
        query = query.where(AuditEvent.actor_share_link_id.is_(None), AuditEvent.actor_role != "patient")
    if before is not None:
        query = query.where(AuditEvent.id < before)
    events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE + 1)))
    record_event(actor, VIEW_ACTION, resource_type="patient", resource_id=patient_id, patient_id=patient_id)
    rows = []
    for entry in describe_events(actor.tenant_id, events):
        event, kind = entry.event, _kind(entry.event)
        if kind == "provider":
            who_text, detail = "Outside provider", entry.actor_detail.removeprefix("via the link for ")
        elif kind == "you":
            who_text, detail = "You", ""
        else:
            who_text, detail = entry.actor, ""
            if "(" not in who_text:
                who_text = f"{who_text} ({role_label(event.actor_role)})"
        what = own_action_label(event.action) if kind == "you" else action_label(event.action)
        if entry.resource:
            what = f"{what}: {entry.resource}"
        outcome = "" if event.outcome == "success" else entry.outcome
        rows.append(Access(event.id, event.occurred_at, who_text, detail, kind, what, outcome))
    return rows
