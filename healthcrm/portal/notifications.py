"""Notifications: the in-app list (with its unread count) and which kinds a person also gets by email.

Handlers of portal events call `notify(...)` inside the handling transaction; one notification of a kind
per event and person (a unique key), so handling an event twice notifies once.
"""

from __future__ import annotations

from sqlalchemy import func, select

from ..clock import utcnow
from ..counters import insert_unless_exists
from ..extensions import db
from ..tenancy import scoped
from .models import Notification, PortalEvent

# Kinds a patient may also get by email, with the words on the choices form. Every email says only that
# something is waiting, never what (mail/templates: no health information).
EMAIL_KINDS = {
    "message": "A new message from the care team",
    "result": "A new result",
    "refill": "An answer to a refill request",
    "care_plan": "A care plan to read",
}
DEFAULT_EMAIL_KINDS = tuple(EMAIL_KINDS)
UNREAD_BADGE_MAX = 99


def email_kinds(user) -> tuple[str, ...]:
    """The kinds `user` gets by email (their choice, or all of them until they choose)."""
    chosen = user.notify_email_kinds
    return DEFAULT_EMAIL_KINDS if chosen is None else tuple(kind for kind in chosen if kind in EMAIL_KINDS)


def notify(event: PortalEvent, user_id: int, kind: str, text: str, link: str | None = None) -> Notification:
    """Add a notification for `user_id` about `event` (once per event, person and kind)."""
    insert_unless_exists(
        Notification,
        {
            "tenant_id": event.tenant_id,
            "user_id": user_id,
            "patient_id": event.patient_id,
            "event_id": event.id,
            "kind": kind,
            "text": text[:500],
            "link": link,
            "created_at": utcnow(),
        },
        ["event_id", "user_id", "kind"],
    )
    return db.session.scalar(
        scoped(Notification, event.tenant_id).where(
            Notification.event_id == event.id, Notification.user_id == user_id, Notification.kind == kind
        )
    )


def unread_count(user) -> int:
    """The number on the badge (at most UNREAD_BADGE_MAX + 1, so a long backlog costs one small query)."""
    if not getattr(user, "is_authenticated", False):
        return 0
    capped = (
        select(Notification.id)
        .where(Notification.tenant_id == user.tenant_id, Notification.user_id == user.id)
        .where(Notification.read_at.is_(None))
        .limit(UNREAD_BADGE_MAX + 1)
        .subquery()
    )
    return db.session.scalar(select(func.count()).select_from(capped)) or 0
