"""What hangs off a message: a task for whoever answers a patient's message, a notification for the
patient when the care team replies; and the timeline's and dashboard's message sources."""

from __future__ import annotations

from sqlalchemy import and_, select, update

from ...accounts.models import Tenant, User
from ...care.models import DONE, Task
from ...care.services import open_task
from ...extensions import db
from ...tenancy import get_scoped, scoped
from .. import events
from ..feed import Attention, Cursor, TimelineItem, attention_source, timeline_source
from ..models import PortalEvent
from ..notifications import notify
from .models import CLOSED, NEW, WAITING, Message, Thread
from .services import REPLIED_KIND, SENT_KIND, TASK_KIND, unread_message_count

PORTAL_PREFIX = "/portal/messages"
INBOX_PREFIX = "/care/inbox"


def portal_thread_path(thread_id: int) -> str:
    return f"{PORTAL_PREFIX}/{thread_id}"


def inbox_thread_path(thread_id: int) -> str:
    return f"{INBOX_PREFIX}/{thread_id}"


@events.handles(SENT_KIND)
def open_answer_task(event: PortalEvent) -> None:
    """A task to answer, for the thread's person or pool; none while the thread already has one open."""
    thread = get_scoped(Thread, event.subject_id, event.tenant_id)
    if thread is None or thread.status != NEW:
        return  # answered (or closed) before this event was handled: nothing is left to answer
    already = db.session.scalar(
        scoped(Task, event.tenant_id).where(
            Task.kind == TASK_KIND,
            Task.subject_type == "thread",
            Task.subject_id == thread.id,
            Task.status != DONE,
            Task.event_id != event.id,
        )
    )
    if already is not None:
        return
    open_task(
        event,
        TASK_KIND,
        f"Answer {thread.patient.full_name}'s message",
        link=inbox_thread_path(thread.id),
        assignee_id=thread.assignee_id,
        pool_roles=None if thread.assignee_id else thread.pool_roles,
        pool_name=None if thread.assignee_id else thread.pool_name,
    )


@events.handles(REPLIED_KIND)
def tell_the_patient(event: PortalEvent) -> None:
    """Notify the patient (no health information in the text) and set the thread waiting on them, unless
    someone wrote since or it was closed meanwhile."""
    message_id = event.payload.get("message_id")
    db.session.execute(
        update(Thread)
        .where(
            Thread.id == event.subject_id,
            Thread.tenant_id == event.tenant_id,
            Thread.last_message_id == message_id,
            Thread.status != CLOSED,
        )
        .values(status=WAITING)
        .execution_options(synchronize_session=False)
    )
    patient_user = db.session.scalar(
        select(User.id).where(User.tenant_id == event.tenant_id, User.patient_id == event.patient_id)
    )
    if patient_user is None:
        return
    tenant = db.session.get(Tenant, event.tenant_id)
    notify(
        event,
        patient_user,
        "message",
        f"You have a new message from {tenant.name}.",
        portal_thread_path(event.subject_id),
    )


@timeline_source("message", "Messages")
def message_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    """Each message in the patient's threads, newest first (one query; keyset on (created_at, id))."""
    query = (
        select(Message.id, Message.created_at, Message.from_patient, Thread.id, Thread.subject)
        .join(Thread, and_(Thread.id == Message.thread_id, Thread.tenant_id == Message.tenant_id))
        .where(Message.tenant_id == tenant_id, Thread.patient_id == patient_id)
    )
    if before is not None:
        at, key = before
        query = query.where((Message.created_at < at) | and_(Message.created_at == at, Message.id < key))
    rows = db.session.execute(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)).all()
    return [
        TimelineItem(
            kind="message",
            at=created_at,
            key=message_id,
            title="You wrote to your care team" if from_patient else "A message from your care team",
            detail=subject,
            link=portal_thread_path(thread_id),
        )
        for message_id, created_at, from_patient, thread_id, subject in rows
    ]


@attention_source
def unread_messages(tenant_id: int, patient_id: int, user_id: int) -> list[Attention]:
    count = unread_message_count(tenant_id, patient_id, user_id)
    if not count:
        return []
    text = "1 unread message" if count == 1 else f"{count} unread messages"
    return [Attention(text=text, link=PORTAL_PREFIX, count=count)]


__all__ = ["inbox_thread_path", "message_items", "portal_thread_path", "unread_messages"]
