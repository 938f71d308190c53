"""Portal events: raised in the action's own transaction, handled by a job exactly once.

A service that does something in the portal calls `raise_event(...)` before it commits, then
`commit()` (this module's), which commits and queues `portal.handle_event` for each event it raised.
Handlers register per kind with `@handles("message.sent")` (or `@handles("*")` for every kind) in their own
area's module; `handle_event` claims the event with a guarded UPDATE and runs every handler in that same
transaction, so two workers racing, or a job run twice, handle an event once: the loser's UPDATE finds it
already handled and changes nothing. A handler that raises rolls the claim back and the job is retried.

If the queue is down when an event is raised, the action still stands: the periodic `portal.events` sweep
handles whatever is left unhandled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import redis
from sqlalchemy import select, update

from ..audit.services import Actor
from ..clock import utcnow
from ..extensions import db
from ..tenancy import get_scoped
from .models import PortalEvent

log = logging.getLogger(__name__)

EVERY_KIND = "*"
HANDLERS: dict[str, list[Callable[[PortalEvent], None]]] = {}
# Events raised in this session and not yet queued (ids known after the flush).
_PENDING_KEY = "portal_events_raised"
# The sweep leaves recent events to the jobs queued for them.
SWEEP_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 500


def handles(kind: str) -> Callable[[Callable[[PortalEvent], None]], Callable[[PortalEvent], None]]:
    """Register `fn(event)` to run, inside the handling transaction, for events of `kind` ("*": all)."""

    def decorator(fn: Callable[[PortalEvent], None]) -> Callable[[PortalEvent], None]:
        HANDLERS.setdefault(kind, []).append(fn)
        return fn

    return decorator


def raise_event(
    actor: Actor,
    kind: str,
    *,
    patient_id: int,
    tenant_id: int | None = None,
    subject: tuple[str, int] | None = None,
    **payload: int | str | bool | None,
) -> PortalEvent:
    """Add an event to the current transaction (committed or rolled back with the action)."""
    event = PortalEvent(
        tenant_id=tenant_id if tenant_id is not None else actor.tenant_id,
        patient_id=patient_id,
        kind=kind,
        subject_type=subject[0] if subject else None,
        subject_id=subject[1] if subject else None,
        actor_user_id=actor.user_id,
        payload=dict(payload),
    )
    db.session.add(event)
    db.session.flush()
    db.session.info.setdefault(_PENDING_KEY, []).append((event.id, event.tenant_id))
    return event


def commit() -> None:
    """Commit the action and its events, then queue the handling of each event."""
    db.session.commit()
    dispatch()


def dispatch() -> None:
    """Queue `portal.handle_event` for the events this session raised and committed."""
    from ..jobs.queue import enqueue  # noqa: PLC0415 - jobs imports every area's tasks

    pending = db.session.info.pop(_PENDING_KEY, [])
    for event_id, tenant_id in pending:
        try:
            enqueue("portal.handle_event", event_id, tenant_id=tenant_id, label="Portal event")
        except redis.RedisError:
            log.warning("portal event %s not queued (the queue is down); the sweep will handle it", event_id)


def commit_and_handle_here() -> None:
    """Commit, then handle this session's raised events in this process instead of queueing them (a CLI
    command such as `flask demo`: its events are handled before it returns, with or without a worker)."""
    db.session.commit()
    for event_id, tenant_id in db.session.info.pop(_PENDING_KEY, []):
        handle_event(event_id, tenant_id)


def discard_pending() -> None:
    """Forget raised events after a rollback (they were never committed)."""
    db.session.info.pop(_PENDING_KEY, None)


def handle_event(event_id: int, tenant_id: int) -> bool:
    """Handle one event: claim it, run its handlers, commit. Returns whether this call handled it."""
    claimed = db.session.execute(
        update(PortalEvent)
        .where(
            PortalEvent.id == event_id,
            PortalEvent.tenant_id == tenant_id,
            PortalEvent.handled_at.is_(None),
        )
        .values(handled_at=utcnow(), attempts=PortalEvent.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        return False
    event = get_scoped(PortalEvent, event_id, tenant_id)
    try:
        for handler in [*HANDLERS.get(event.kind, []), *HANDLERS.get(EVERY_KIND, [])]:
            handler(event)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    after = db.session.info.pop(AFTER_HANDLING_KEY, [])
    for callback in after:
        callback()
    return True


AFTER_HANDLING_KEY = "portal_after_handling"


def after_handling(callback: Callable[[], None]) -> None:
    """Run `callback` once the handling transaction has committed (e.g. queue an email job)."""
    db.session.info.setdefault(AFTER_HANDLING_KEY, []).append(callback)


def sweep_unhandled() -> str:
    """Handle events older than SWEEP_AFTER that no job handled (the queue was down, a worker died)."""
    cutoff = utcnow() - SWEEP_AFTER
    # The sweep crosses clinics on purpose: each event is then handled within its own clinic.
    rows = db.session.execute(
        select(PortalEvent.id, PortalEvent.tenant_id)
        .where(PortalEvent.handled_at.is_(None), PortalEvent.created_at < cutoff)
        .order_by(PortalEvent.id)
        .limit(SWEEP_BATCH)
        .execution_options(all_tenants=True)
    ).all()
    db.session.rollback()
    handled = 0
    for event_id, tenant_id in rows:
        try:
            handled += handle_event(event_id, tenant_id)
        except Exception:
            log.exception("portal event %s could not be handled; it stays for the next sweep", event_id)
    return f"{handled} of {len(rows)} unhandled events handled"


__all__ = [
    "EVERY_KIND",
    "HANDLERS",
    "after_handling",
    "commit",
    "commit_and_handle_here",
    "dispatch",
    "handle_event",
    "handles",
    "raise_event",
    "sweep_unhandled",
]
