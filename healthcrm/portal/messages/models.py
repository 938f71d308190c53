"""The tables of messages: topics and notice settings per clinic, threads, messages, who read what, and the
files attached to a message."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...clock import utcnow
from ...extensions import db
from ...tenancy import TenantScoped

NEW = "new"  # the patient wrote last: the care team owes an answer
WAITING = "waiting"  # the care team answered: waiting on the patient
CLOSED = "closed"
THREAD_STATUSES = {NEW: "New", WAITING: "Waiting on patient", CLOSED: "Closed"}

SUBJECT_MAX = 200
BODY_MAX = 10_000
TOPIC_NAME_MAX = 80
NOTICE_MAX = 500


class MessageTopic(TenantScoped, db.Model):
    """What a patient may write about besides "my coach" ("Billing", "Medication question"), and the roles
    whose people answer it (the pool)."""

    __tablename__ = "message_topics"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_message_topics_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(TOPIC_NAME_MAX))
    pool_roles: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MessageSettings(TenantScoped, db.Model):
    """What the patient reads before sending (one row per clinic; none: the defaults of services.py)."""

    __tablename__ = "message_settings"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_message_settings_tenant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    emergency_notice: Mapped[str] = mapped_column(String(NOTICE_MAX))
    reply_time: Mapped[str] = mapped_column(String(NOTICE_MAX))  # "within 2 working days"
    show_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Thread(TenantScoped, db.Model):
    """A conversation of one patient with the care team, assigned to a person or to a topic's pool."""

    __tablename__ = "message_threads"
    __table_args__ = (
        # The inbox pages by status, newest activity first (keyset on last_message_at, id).
        Index("ix_message_threads_inbox", "tenant_id", "status", "last_message_at", "id"),
        Index("ix_message_threads_patient", "patient_id", "last_message_at"),
        Index("ix_message_threads_assignee", "assignee_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX))
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("message_topics.id"))
    # A person (the patient's coach by default), or else a pool of roles (from the topic).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    pool_roles: Mapped[list | None] = mapped_column(JSON)
    pool_name: Mapped[str | None] = mapped_column(String(TOPIC_NAME_MAX))
    status: Mapped[str] = mapped_column(String(20), default=NEW)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The newest message: what the lists sort on and what "unread" compares with.
    last_message_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_message_id: Mapped[int | None] = mapped_column(Integer)
    last_author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    message_count: Mapped[int] = mapped_column(Integer, default=0)

    patient = relationship("Patient")
    topic: Mapped[MessageTopic | None] = relationship()
    assignee = relationship("User", foreign_keys=[assignee_id])
    last_author = relationship("User", foreign_keys=[last_author_id])
    messages: Mapped[list[Message]] = relationship(
        back_populates="thread", order_by="Message.id", viewonly=True
    )

    @property
    def status_label(self) -> str:
        return THREAD_STATUSES.get(self.status, self.status)

    @property
    def routed_to(self) -> str:
        """Who answers it, in words ("Jo Smith", "Billing")."""
        if self.assignee is not None:
            return self.assignee.full_name
        return self.pool_name or "The care team"


class Message(TenantScoped, db.Model):
    """One message. It never changes once sent (corrections are new messages): the ORM refuses an UPDATE
    or a DELETE of one (see `_refuse_changes`)."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_thread", "thread_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("message_threads.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Whether the author is the patient (so the lists need not load the author to say who wrote).
    from_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    thread: Mapped[Thread] = relationship(back_populates="messages")
    author = relationship("User")
    attachment_links: Mapped[list[MessageAttachment]] = relationship(
        order_by="MessageAttachment.attachment_id", viewonly=True
    )


class MessageImmutable(Exception):
    """Someone tried to change or delete a sent message."""


@event.listens_for(Message, "before_update")
@event.listens_for(Message, "before_delete")
def _refuse_changes(_mapper, _connection, target: Message) -> None:
    raise MessageImmutable(f"message {target.id} was sent and cannot change; send a correction instead")


class ThreadRead(TenantScoped, db.Model):
    """How far one reader (the patient, or one staff member) has read one thread."""

    __tablename__ = "message_thread_reads"
    __table_args__ = (UniqueConstraint("thread_id", "user_id", name="uq_message_thread_reads_reader"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("message_threads.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    last_read_message_id: Mapped[int] = mapped_column(Integer, default=0)
    read_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MessageAttachment(TenantScoped, db.Model):
    """A file (a patient document, stored by files/patient_files.py) attached to a message."""

    __tablename__ = "message_attachments"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id"), primary_key=True, index=True)

    attachment = relationship("Attachment")


__all__ = [
    "BODY_MAX",
    "CLOSED",
    "NEW",
    "SUBJECT_MAX",
    "THREAD_STATUSES",
    "WAITING",
    "Message",
    "MessageAttachment",
    "MessageImmutable",
    "MessageSettings",
    "MessageTopic",
    "Thread",
    "ThreadRead",
]
