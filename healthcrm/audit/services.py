"""Recording and verifying audit events.

`record_event` adds the event to the caller's session: it is committed with the change it describes,
or rolled back with it. Each clinic has its own hash chain; events with no clinic (a failed login for
an unknown email) form the system chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update

from ..accounts.models import User
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..extensions import db
from ..patients.models import Patient
from ..sharing.models import ShareLink
from ..tenancy import scoped
from .labels import action_label, outcome_label, role_label
from .models import (
    AUDIT_YEARS_DEFAULT,
    HOT_MONTHS_DEFAULT,
    RECORD_ADULT_YEARS_DEFAULT,
    RECORD_MINOR_UNTIL_AGE_DEFAULT,
    SHARE_LOG_YEARS_DEFAULT,
    AuditArchive,
    AuditChainHead,
    AuditEvent,
    RetentionSettings,
)

GENESIS_HASH = "0" * 64
SUCCESS = "success"
FAILURE = "failure"
DENIED = "denied"


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where. Built by the web layer, a job or a CLI command."""

    tenant_id: int | None
    user_id: int | None = None
    role: str | None = None
    share_link_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, tenant_id: int | None, request_id: str | None = None) -> Actor:
        return cls(tenant_id=tenant_id, role="system", request_id=request_id)


@dataclass
class ChainReport:
    checked: int = 0
    broken_event_id: int | None = None
    broken_tenant_id: int | None = None
    reason: str = ""
    chains: dict = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.broken_event_id is None


def _digest(event: AuditEvent) -> str:
    payload = {
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "request_id": event.request_id,
        "tenant_id": event.tenant_id,
        "actor_user_id": event.actor_user_id,
        "actor_role": event.actor_role,
        "actor_share_link_id": event.actor_share_link_id,
        "patient_id": event.patient_id,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "outcome": event.outcome,
        "changed_fields": event.changed_fields,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_key(tenant_id: int | None) -> int:
    """The head row's key of a clinic's chain; 0 is the system chain (events of no clinic)."""
    return tenant_id or 0


def _take_chain_head(tenant_id: int | None) -> str:
    """Lock the chain's head row for this transaction and return the newest event's hash.

    The UPDATE comes before any read of the head: it waits for a concurrent appender to commit, and what it
    returns is then the head that appender left (see `AuditChainHead`).
    """
    key = chain_key(tenant_id)
    taken = update(AuditChainHead).where(AuditChainHead.chain_key == key)
    head = db.session.scalar(taken.values(events=AuditChainHead.events).returning(AuditChainHead.hash))
    if head is not None:
        return head
    # The chain's first event (or a database from before the head rows): start the head from the newest
    # event. Two first appenders race only to insert the same row; the loser's insert does nothing.
    newest = db.session.scalar(
        select(AuditEvent.hash).where(_chain_filter(tenant_id)).order_by(AuditEvent.id.desc()).limit(1)
    )
    insert_unless_exists(
        AuditChainHead, {"chain_key": key, "hash": newest or GENESIS_HASH, "events": 0}, ["chain_key"]
    )
    return db.session.scalar(taken.values(events=AuditChainHead.events).returning(AuditChainHead.hash))


def _chain_filter(tenant_id: int | None):
    return AuditEvent.tenant_id.is_(None) if tenant_id is None else AuditEvent.tenant_id == tenant_id


def record_event(
    actor: Actor,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: int | str | None = None,
    patient_id: int | None = None,
    outcome: str = SUCCESS,
    changed_fields: Iterable[str] | None = None,
    tenant_id: int | None = None,
    occurred_at: datetime | None = None,
) -> AuditEvent:
    """Append an event to the clinic's chain inside the current transaction.

    `changed_fields` are field names only, never values. Raises if the event cannot be written, so the
    caller's change rolls back with it. `occurred_at` is for seeding history (the demo) only: everything
    else happens now.
    """
    chain_tenant = tenant_id if tenant_id is not None else actor.tenant_id
    prev = _take_chain_head(chain_tenant)
    event = AuditEvent(
        occurred_at=occurred_at or utcnow(),
        request_id=actor.request_id,
        tenant_id=chain_tenant,
        actor_user_id=actor.user_id,
        actor_role=actor.role,
        actor_share_link_id=actor.share_link_id,
        patient_id=patient_id,
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        outcome=outcome,
        changed_fields=json.dumps(sorted(changed_fields)) if changed_fields else None,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:255] or None,
        prev_hash=prev,
    )
    event.hash = _digest(event)
    db.session.add(event)
    db.session.flush()
    db.session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.chain_key == chain_key(chain_tenant))
        .values(hash=event.hash, last_event_id=event.id, events=AuditChainHead.events + 1)
    )
    return event


def verify_chain(tenant_id: int | None = None, *, all_chains: bool = True) -> ChainReport:
    """Walk each chain in id order, recompute every hash, and report the first row that does not fit.

    A clinic's chain runs through its archive files (months moved out of the table) and on into the table;
    months deleted past retention leave the chain starting at their last recorded hash.
    """
    from .archive import ArchiveProblem, archives_of, chain_events, chain_start  # noqa: PLC0415

    report = ChainReport()
    heads: dict[int | None, str] = {}
    for tenant in _chain_tenants() if all_chains else [tenant_id]:
        archives = archives_of(tenant) if tenant is not None else []
        start, _ = chain_start(archives)
        expected = start or GENESIS_HASH
        query = select(AuditEvent).where(_chain_filter(tenant)).order_by(AuditEvent.id)
        # Streamed in batches (a server-side cursor on PostgreSQL), closed even when we stop at a broken row.
        hot = db.session.scalars(query.execution_options(yield_per=1000))
        try:
            for event in chain_events(hot, archives):
                report.checked += 1
                if event.prev_hash != expected:
                    reason = "previous hash does not match the row before it (a row was removed or reordered)"
                elif _digest(event) != event.hash:
                    reason = "content does not match its hash (the row was altered)"
                else:
                    expected = event.hash
                    report.chains[tenant] = report.chains.get(tenant, 0) + 1
                    continue
                month = getattr(event, "archive_month", None)
                if month:
                    reason = f"{reason}, in the audit archive of {month}"
                report.broken_event_id, report.broken_tenant_id, report.reason = event.id, tenant, reason
                return report
        except ArchiveProblem as problem:
            report.broken_event_id = problem.archive.first_event_id
            report.broken_tenant_id = tenant
            report.reason = str(problem)
            return report
        finally:
            hot.close()
        heads[tenant] = expected
    _check_heads(report, heads, None if all_chains else chain_key(tenant_id))
    return report


def _chain_tenants() -> list[int | None]:
    """Every chain: the clinics' (with events in the table, an archive, or a head row) and the system's."""
    keys = set(db.session.scalars(select(AuditEvent.tenant_id).distinct()))
    keys |= set(db.session.scalars(select(AuditArchive.tenant_id).distinct()))
    keys |= {key or None for key in db.session.scalars(select(AuditChainHead.chain_key))}
    return sorted(keys, key=lambda key: key or 0)


def _check_heads(report: ChainReport, heads: dict[int | None, str], only_key: int | None) -> None:
    """Each head row must name the last event of its chain: otherwise the newest events were removed (which
    the chain alone cannot show) or the head was rewritten."""
    rows = select(AuditChainHead).order_by(AuditChainHead.chain_key)
    if only_key is not None:
        rows = rows.where(AuditChainHead.chain_key == only_key)
    for head in db.session.scalars(rows):
        tenant = head.chain_key or None
        if head.hash != heads.get(tenant, GENESIS_HASH):
            report.broken_event_id = head.last_event_id
            report.broken_tenant_id = tenant
            report.reason = (
                f"the chain ends before event {head.last_event_id}, its recorded head "
                "(the newest events were removed)"
            )
            return


def find_events(
    tenant_id: int,
    *,
    action_prefix: str = "",
    patient_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[AuditEvent]:
    """A clinic's events, newest first, optionally by action prefix and patient; `before_id` pages back."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))


@dataclass(frozen=True)
class EventEntry:
    """One audit event as people read it: names and labels, with the raw event kept for the detail view."""

    event: AuditEvent
    action: str
    actor: str
    actor_detail: str
    patient: str | None
    resource: str | None
    outcome: str
    fields: list[str]


def describe_events(tenant_id: int, events: list[AuditEvent]) -> list[EventEntry]:
    """Put names to a page of a clinic's events: the user's name and role, the patient's name and MRN, the
    share's recipient. Three queries at most (users, patients, shares), however many events; a person
    the log mentions but the clinic no longer holds keeps their id (the log outlives what it names)."""
    user_ids = {e.actor_user_id for e in events if e.actor_user_id}
    user_ids |= {
        int(e.resource_id) for e in events if e.resource_type == "user" and (e.resource_id or "").isdigit()
    }
    share_ids = {e.actor_share_link_id for e in events if e.actor_share_link_id}
    share_ids |= {
        int(e.resource_id) for e in events if e.resource_type == "share" and (e.resource_id or "").isdigit()
    }
    patient_ids = {e.patient_id for e in events if e.patient_id}
    users = _rows(User, tenant_id, user_ids, User.full_name, User.role)
    patients = _rows(Patient, tenant_id, patient_ids, Patient.first_name, Patient.last_name, Patient.mrn)
    shares = _rows(ShareLink, tenant_id, share_ids, ShareLink.recipient_name, ShareLink.recipient_email)

    def user_name(user_id: int) -> str:
        found = users.get(user_id)
        return f"{found[0]} ({role_label(found[1])})" if found else f"User #{user_id}"

    def share_name(share_id: int) -> str:
        found = shares.get(share_id)
        return f"{found[0]} <{found[1]}>" if found else f"#{share_id}"

    def patient_name(patient_id: int) -> str:
        found = patients.get(patient_id)
        return f"{found[0]} {found[1]} (MRN {found[2]})" if found else f"Patient #{patient_id}"

    entries = []
    for e in events:
        if e.actor_user_id:
            actor, detail = user_name(e.actor_user_id), ""
        elif e.actor_share_link_id:
            actor, detail = "Outside provider", f"via the link for {share_name(e.actor_share_link_id)}"
        else:
            actor, detail = role_label(e.actor_role), ""
        entries.append(
            EventEntry(
                event=e,
                action=action_label(e.action),
                actor=actor,
                actor_detail=detail,
                patient=patient_name(e.patient_id) if e.patient_id else None,
                resource=_resource(e, user_name, share_name),
                outcome=outcome_label(e.outcome),
                fields=[name.replace("_", " ") for name in json.loads(e.changed_fields or "[]")],
            )
        )
    return entries


def _rows(model, tenant_id: int, ids: set[int], *columns) -> dict[int, tuple]:
    if not ids:
        return {}
    query = scoped(model, tenant_id).with_only_columns(model.id, *columns).where(model.id.in_(ids))
    return {row[0]: tuple(row[1:]) for row in db.session.execute(query)}


RESOURCE_LABELS = {
    "attachment": "File",
    "lab_result": "Labs",
    "patient": "Patient",
    "record": "Record",
    "record_template": "Template",
    "session": "Session",
    "share": "Share link",
    "tenant": "Clinic",
    "user": "User",
}


def _resource(event: AuditEvent, user_name, share_name) -> str | None:
    kind, ident = event.resource_type, event.resource_id
    if not kind or kind == "patient":  # a patient is named in the patient column
        return None
    if ident and ident.isdigit() and kind == "user":
        return user_name(int(ident))
    if ident and ident.isdigit() and kind == "share":
        return f"Share link for {share_name(int(ident))}"
    label = RESOURCE_LABELS.get(kind, kind.replace("_", " ").capitalize())
    return f"{label} #{ident}" if ident else label


def retention_settings(tenant_id: int) -> RetentionSettings:
    """The clinic's retention settings; an unsaved row of defaults when it has none."""
    found = db.session.scalar(scoped(RetentionSettings, tenant_id))
    if found is not None:
        return found
    return RetentionSettings(
        tenant_id=tenant_id,
        audit_years=AUDIT_YEARS_DEFAULT,
        share_log_years=SHARE_LOG_YEARS_DEFAULT,
        hot_months=HOT_MONTHS_DEFAULT,
        record_adult_years=RECORD_ADULT_YEARS_DEFAULT,
        record_minor_until_age=RECORD_MINOR_UNTIL_AGE_DEFAULT,
    )
