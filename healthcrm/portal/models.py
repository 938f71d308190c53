"""The portal's own tables: the outbox of portal events, and the notifications people read in the app.

Every portal action (a message sent, a document uploaded, a refill requested, …) adds a `PortalEvent` in the
same transaction as the action itself; jobs handle each event exactly once (`portal.events`), and what hangs
off an event (staff tasks, notifications, emails, care-stage moves) is written in the handler's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db
from ..tenancy import TenantScoped


class PortalEvent(TenantScoped, db.Model):
    """Something that happened in the portal (or to a patient's portal data), waiting to be handled."""

    __tablename__ = "portal_events"
    __table_args__ = (Index("ix_portal_events_unhandled", "handled_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(60))  # e.g. "message.sent"
    # The item the event is about (a thread, a refill request, …), for the task's and notification's link.
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Ids and short words only (a topic's id, a prescription's id): never health information.
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Notification(TenantScoped, db.Model):
    """One line in a person's notification list (a patient, or a staff member)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_read", "user_id", "read_at"),
        # One notification of a kind per event and person: a handler run twice adds nothing.
        Index("uq_notifications_event_user_kind", "event_id", "user_id", "kind", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("portal_events.id"))
    kind: Mapped[str] = mapped_column(String(40), default="share", server_default="share")
    text: Mapped[str] = mapped_column(String(500))  # plain words, no clinical detail
    link: Mapped[str | None] = mapped_column(String(300))  # a path in the app
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The email about it: claimed once (guarded UPDATE) before sending.
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime)
