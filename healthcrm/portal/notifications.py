"""Notifications: the in-app list (with its unread count) and which kinds a person also gets by email.

Handlers of portal events call `notify(...)` inside the handling transaction; one notification of a kind
per event and person (a unique key), so handling an event twice notifies once. A new notification of a kind
the patient chose is emailed by the `portal.email_notification` job, queued once the handling transaction
has committed; the job claims `emailed_at` with a guarded UPDATE held until the message is handed over, so
two workers (or a job run twice) send one email. The email says only that something is waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import func, select, update

from ..accounts.models import Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..errors import DomainError
from ..extensions import db
from ..tenancy import get_scoped, scoped
from .models import Notification, PortalEvent

log = logging.getLogger(__name__)
LIST_PAGE_SIZE = 30
# The sweep emails what no job did (the queue was down, or `notify` ran outside an event's handling), but
# leaves recent ones to their jobs and gives up on old ones (an email days late helps nobody).
EMAIL_SWEEP_AFTER = timedelta(minutes=2)
EMAIL_SWEEP_WITHIN = timedelta(days=2)
EMAIL_SWEEP_BATCH = 200

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
    inserted = insert_unless_exists(
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
    notification = db.session.scalar(
        scoped(Notification, event.tenant_id).where(
            Notification.event_id == event.id, Notification.user_id == user_id, Notification.kind == kind
        )
    )
    if inserted and kind in EMAIL_KINDS:
        user = get_scoped(User, user_id, event.tenant_id)
        if user is not None and user.is_patient and user.email and kind in email_kinds(user):
            queue_email(notification.id, event.tenant_id)
    return notification


def notify_staff(
    tenant_id: int, user_ids: Iterable[int], kind: str, text: str, link: str | None = None
) -> list[Notification]:
    """In-app notifications for staff members (a restore is ready, a storage alert), in the caller's
    transaction. Emailing them is the caller's (its own job, after commit); saying something once is the
    caller's too (its own state: a crossing, a restore)."""
    staff = db.session.scalars(
        scoped(User, tenant_id).where(User.id.in_(list(user_ids)), User.role != "patient", User.active)
    ).all()
    made = [
        Notification(tenant_id=tenant_id, user_id=user.id, kind=kind, text=text[:500], link=link)
        for user in staff
    ]
    db.session.add_all(made)
    db.session.flush()
    return made


def queue_email(notification_id: int, tenant_id: int) -> None:
    """Queue the email once the current transaction commits: inside an event's handling, after it; else
    at once (the caller commits first)."""

    def send() -> None:
        from ..jobs.queue import enqueue  # noqa: PLC0415 - jobs imports every area's tasks

        try:
            enqueue("portal.email_notification", notification_id, tenant_id=tenant_id, label="Email notice")
        except redis.RedisError:
            log.warning("email for notification %s not queued (the queue is down)", notification_id)

    from .events import after_handling  # noqa: PLC0415 - events imports this module's models

    after_handling(send)


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


# --- the list --------------------------------------------------------------------------------------------

HOME_UNREAD_MAX = 5
# What the link of a notification of each kind says (the portal home and the list).
ACTION_LABELS = {
    "message": "Read the message",
    "result": "See your results",
    "refill": "See your refill requests",
    "care_plan": "Read your care plan",
    "share": "See your shared records",
    "appointment": "See your appointment",
}


def unread_notifications(actor: Actor, limit: int = HOME_UNREAD_MAX) -> list[Notification]:
    """The person's newest unread notifications (the portal home's card)."""
    statement = scoped(Notification, actor.tenant_id).where(
        Notification.user_id == actor.user_id, Notification.read_at.is_(None)
    )
    return list(db.session.scalars(statement.order_by(Notification.id.desc()).limit(limit)))


def notification_page(actor: Actor, before: str | None) -> tuple[list[Notification], int | None, int | None]:
    """One page of the person's notifications from the `before` id as the URL gives it (anything not a
    number is the first page): (the rows, the id to ask for the next page or None, the `before` used)."""
    try:
        before_id = int(before or 0) or None
    except ValueError:
        before_id = None
    rows = list_notifications(actor, before_id)
    more = len(rows) > LIST_PAGE_SIZE
    rows = rows[:LIST_PAGE_SIZE]
    return rows, (rows[-1].id if more and rows else None), before_id


def list_notifications(actor: Actor, before_id: int | None = None) -> list[Notification]:
    """The person's notifications, newest first, a page at a time (keyset on the id); one more than the
    page, so the caller knows whether there are older ones."""
    statement = scoped(Notification, actor.tenant_id).where(Notification.user_id == actor.user_id)
    if before_id:
        statement = statement.where(Notification.id < before_id)
    return list(db.session.scalars(statement.order_by(Notification.id.desc()).limit(LIST_PAGE_SIZE + 1)))


def mark_read(actor: Actor, notification_id: int | None = None) -> int:
    """Mark one of the person's notifications read (all of them without an id); another's id changes
    nothing. Returns how many changed."""
    statement = (
        update(Notification)
        .where(
            Notification.tenant_id == actor.tenant_id,
            Notification.user_id == actor.user_id,
            Notification.read_at.is_(None),
        )
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    changed = db.session.execute(statement).rowcount
    db.session.commit()
    return changed


def own_notification(actor: Actor, notification_id: int) -> Notification | None:
    found = get_scoped(Notification, notification_id, actor.tenant_id)
    return found if found is not None and found.user_id == actor.user_id else None


class NotificationChoiceError(DomainError):
    pass


def save_email_kinds(actor: Actor, user: User, chosen: list[str]) -> tuple[str, ...]:
    """The patient's choice of what is also emailed (audited)."""
    unknown = [kind for kind in chosen if kind not in EMAIL_KINDS]
    if unknown:
        raise NotificationChoiceError("Choose from the listed kinds.", "kinds")
    user.notify_email_kinds = [kind for kind in EMAIL_KINDS if kind in chosen]
    record_event(
        actor,
        "portal.notification_choices_changed",
        resource_type="user",
        resource_id=user.id,
        patient_id=user.patient_id,
        changed_fields=["notify_email_kinds"],
    )
    db.session.commit()
    return email_kinds(user)


# --- the email -------------------------------------------------------------------------------------------


def email_notification(notification_id: int, tenant_id: int) -> bool:
    """Send the email about one notification, once: the guarded UPDATE of `emailed_at` is held (a row lock
    on PostgreSQL, the write lock on SQLite) until the message is handed to the mail backend, so a second
    worker waits and then finds it sent. A failure to send rolls the claim back for the job's retry."""
    claimed = db.session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.tenant_id == tenant_id,
            Notification.emailed_at.is_(None),
        )
        .values(emailed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        return False
    notification = get_scoped(Notification, notification_id, tenant_id)
    user = get_scoped(User, notification.user_id, tenant_id)
    # Chosen when the notification was made; checked again in case the patient changed their mind since.
    if (
        user is None
        or not user.is_patient
        or not user.active
        or not user.email
        or notification.kind not in email_kinds(user)
    ):
        db.session.commit()  # nothing to send, and nothing to send later either
        return False
    from ..mail.services import compose, deliver  # noqa: PLC0415 - mail renders templates (Flask)

    tenant = db.session.get(Tenant, tenant_id)
    url = f"{current_app.config['PUBLIC_URL']}/portal/notifications"
    try:
        deliver(compose(user.email, "portal_notice", tenant_id=tenant_id, clinic=tenant.name, url=url))
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return True


def sweep_unsent_emails() -> str:
    """Email recent notifications that no job emailed (the periodic `portal.notification_emails`)."""
    now = utcnow()
    # Across clinics on purpose: each notification is then emailed within its own clinic.
    rows = db.session.execute(
        select(Notification.id, Notification.tenant_id)
        .join(User, User.id == Notification.user_id)
        .where(
            Notification.emailed_at.is_(None),
            Notification.kind.in_(EMAIL_KINDS),
            Notification.created_at < now - EMAIL_SWEEP_AFTER,
            Notification.created_at > now - EMAIL_SWEEP_WITHIN,
            User.role == "patient",
        )
        .order_by(Notification.id)
        .limit(EMAIL_SWEEP_BATCH)
        .execution_options(all_tenants=True)
    ).all()
    db.session.rollback()
    sent = 0
    for notification_id, tenant_id in rows:
        try:
            sent += email_notification(notification_id, tenant_id)
        except Exception:
            log.exception("email for notification %s not sent; it stays for the next sweep", notification_id)
    return f"{sent} of {len(rows)} unsent notification emails sent"
