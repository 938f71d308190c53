"""Messages between patients and the care team: what the portal's and the inbox's views call.

A patient's services take the patient id from the caller (the view reads it from the session) and check it
is the actor's own; staff services need `care.inbox`. Every read and send is audited in the same
transaction; a send raises its portal event ("message.sent" or "message.replied") with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from sqlalchemy import String, and_, case, cast, func, select, update
from sqlalchemy.orm import selectinload

from ...accounts.models import Tenant, User
from ...accounts.roles import COACH, NURSE, STAFF_ROLES
from ...audit.services import Actor, record_event
from ...care.services import complete_tasks_about
from ...clock import utcnow
from ...counters import insert_unless_exists
from ...errors import DomainError, NotFound
from ...extensions import db
from ...patients.models import Patient
from ...permissions import can, require
from ...tenancy import get_scoped, scoped
from .. import clinic, events
from .models import (
    BODY_MAX,
    CLOSED,
    NEW,
    NOTICE_MAX,
    SUBJECT_MAX,
    THREAD_STATUSES,
    TOPIC_NAME_MAX,
    WAITING,
    Message,
    MessageAttachment,
    MessageSettings,
    MessageTopic,
    Thread,
    ThreadRead,
)

DEFAULT_EMERGENCY_NOTICE = "Not for emergencies: in an emergency call 911."
DEFAULT_REPLY_TIME = "within 2 working days"
# A thread for a patient without a coach, and no topic chosen, goes to these roles.
DEFAULT_POOL = ("Care team", [COACH, NURSE])
PAGE_SIZE = 20
MAX_ATTACHMENTS = 5
# Photos and PDFs only, recognised by their content (files/checks.py).
ATTACHMENT_KINDS = frozenset({"pdf", "jpeg", "png", "heic"})
SCOPES = {"all": "All", "mine": "Mine", "pools": "My pools"}
MESSAGING_OFF_TEXT = (
    "Messages are turned off for you at the moment. Please call the clinic for anything you need."
)
SENT_KIND = "message.sent"
REPLIED_KIND = "message.replied"
TASK_KIND = "message"  # the staff task "answer this message", one open per thread


class MessageError(DomainError):
    """Input about a message the person can fix (an empty body, messaging off, a file not accepted)."""


@dataclass(frozen=True)
class Notice:
    emergency: str
    reply_time: str
    hours: list  # clinic.HoursLine, or empty when the clinic does not show them


@dataclass(frozen=True)
class Upload:
    filename: str
    stream: IO[bytes]


@dataclass(frozen=True)
class ThreadRow:
    thread: Thread
    unread: bool
    patient_name: str = ""
    patient_mrn: str = ""
    assignee_name: str | None = None


@dataclass
class InboxPage:
    rows: list[ThreadRow]
    counts: dict[str, tuple[int, int]]  # status: (threads, unread threads)
    next_cursor: str | None
    status: str
    scope: str


@dataclass
class ThreadView:
    thread: Thread
    messages: list[Message]
    unread_from: int  # the first message id the reader had not read before opening
    topics: list[MessageTopic] = field(default_factory=list)


# --- cursors -----------------------------------------------------------------------------------------------


def parse_cursor(raw: str | None) -> tuple[datetime, int] | None:
    """A keyset cursor "<iso time>~<id>" (None for the first page); ValueError when malformed."""
    if not raw:
        return None
    at, _, key = raw.partition("~")
    return datetime.fromisoformat(at), int(key)


def make_cursor(thread: Thread) -> str:
    return f"{thread.last_message_at.isoformat()}~{thread.id}"


def _before(cursor: tuple[datetime, int] | None):
    if cursor is None:
        return True
    at, key = cursor
    return (Thread.last_message_at < at) | and_(Thread.last_message_at == at, Thread.id < key)


# --- the clinic's settings and topics ----------------------------------------------------------------------


def settings_of(tenant_id: int) -> MessageSettings | None:
    return db.session.scalar(scoped(MessageSettings, tenant_id))


def notice_for(tenant: Tenant) -> Notice:
    """What the patient reads before sending."""
    settings = settings_of(tenant.id)
    if settings is None:
        return Notice(DEFAULT_EMERGENCY_NOTICE, DEFAULT_REPLY_TIME, clinic.hours_lines(tenant))
    hours = clinic.hours_lines(tenant) if settings.show_hours else []
    return Notice(settings.emergency_notice, settings.reply_time, hours)


def save_settings(
    actor: Actor, *, emergency_notice: str, reply_time: str, show_hours: bool
) -> MessageSettings:
    require(actor, "care.settings")
    emergency_notice, reply_time = emergency_notice.strip(), reply_time.strip()
    if not emergency_notice:
        raise MessageError("Write the notice patients read before sending.", "emergency_notice")
    if not reply_time:
        raise MessageError("Say when patients can expect an answer.", "reply_time")
    if len(emergency_notice) > NOTICE_MAX or len(reply_time) > NOTICE_MAX:
        raise MessageError(f"At most {NOTICE_MAX} characters.", "emergency_notice")
    settings = settings_of(actor.tenant_id)
    if settings is None:
        settings = MessageSettings(tenant_id=actor.tenant_id)
        db.session.add(settings)
    settings.emergency_notice, settings.reply_time, settings.show_hours = (
        emergency_notice,
        reply_time,
        show_hours,
    )
    db.session.flush()
    record_event(actor, "message.settings_changed", resource_type="message_settings", resource_id=settings.id)
    db.session.commit()
    return settings


def topics(tenant_id: int, *, active_only: bool = False) -> list[MessageTopic]:
    query = scoped(MessageTopic, tenant_id).order_by(MessageTopic.name)
    if active_only:
        query = query.where(MessageTopic.active.is_(True))
    return list(db.session.scalars(query))


def _clean_topic(name: str, roles: list[str]) -> tuple[str, list[str]]:
    name = name.strip()
    if not name:
        raise MessageError("Give the topic a name.", "name")
    if len(name) > TOPIC_NAME_MAX:
        raise MessageError(f"At most {TOPIC_NAME_MAX} characters.", "name")
    chosen = [role for role in STAFF_ROLES if role in roles]
    if not chosen:
        raise MessageError("Choose at least one role to answer this topic.", "roles")
    return name, chosen


def _name_taken(tenant_id: int, name: str, topic_id: int | None = None) -> bool:
    query = scoped(MessageTopic, tenant_id).where(func.lower(MessageTopic.name) == name.lower())
    if topic_id is not None:
        query = query.where(MessageTopic.id != topic_id)
    return db.session.scalar(query) is not None


def create_topic(actor: Actor, name: str, roles: list[str]) -> MessageTopic:
    require(actor, "care.settings")
    name, roles = _clean_topic(name, roles)
    if _name_taken(actor.tenant_id, name):
        raise MessageError("The clinic already has a topic of that name.", "name")
    topic = MessageTopic(tenant_id=actor.tenant_id, name=name, pool_roles=roles, active=True)
    db.session.add(topic)
    db.session.flush()
    record_event(actor, "message.topic_created", resource_type="message_topic", resource_id=topic.id)
    db.session.commit()
    return topic


def update_topic(actor: Actor, topic_id: int, name: str, roles: list[str], active: bool) -> MessageTopic:
    """Rename a topic, change its pool or retire it (threads already routed keep their pool)."""
    require(actor, "care.settings")
    topic = get_scoped(MessageTopic, topic_id, actor.tenant_id)
    if topic is None:
        raise NotFound(topic_id)
    name, roles = _clean_topic(name, roles)
    if _name_taken(actor.tenant_id, name, topic.id):
        raise MessageError("The clinic already has a topic of that name.", "name")
    topic.name, topic.pool_roles, topic.active = name, roles, active
    record_event(actor, "message.topic_changed", resource_type="message_topic", resource_id=topic.id)
    db.session.commit()
    return topic


# --- the patient's side ------------------------------------------------------------------------------------


def _own_patient(actor: Actor, patient_id: int) -> Patient:
    """The actor's own patient record (a portal user reaches no other), else NotFound."""
    require(actor, "portal.use")
    user = get_scoped(User, actor.user_id, actor.tenant_id)
    if user is None or user.patient_id is None or user.patient_id != patient_id:
        raise NotFound(patient_id)
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    return patient


def _own_thread(actor: Actor, patient_id: int, thread_id: int) -> Thread:
    _own_patient(actor, patient_id)
    thread = get_scoped(Thread, thread_id, actor.tenant_id)
    if thread is None or thread.patient_id != patient_id:
        raise NotFound(thread_id)
    return thread


def _unread_expression():
    return Thread.last_message_id > func.coalesce(ThreadRead.last_read_message_id, 0)


def _reads_join(user_id: int):
    return and_(
        ThreadRead.thread_id == Thread.id,
        ThreadRead.user_id == user_id,
        ThreadRead.tenant_id == Thread.tenant_id,
    )


def patient_threads(
    actor: Actor, patient_id: int, cursor: tuple[datetime, int] | None = None, limit: int = PAGE_SIZE
) -> tuple[list[ThreadRow], str | None]:
    """The patient's threads, newest activity first, each marked unread or not (one query), audited."""
    _own_patient(actor, patient_id)
    found = db.session.execute(
        select(Thread, _unread_expression())
        .outerjoin(ThreadRead, _reads_join(actor.user_id))
        .where(Thread.tenant_id == actor.tenant_id, Thread.patient_id == patient_id, _before(cursor))
        .order_by(Thread.last_message_at.desc(), Thread.id.desc())
        .limit(limit + 1)
    ).all()
    rows = [ThreadRow(thread, bool(unread)) for thread, unread in found[:limit]]
    record_event(
        actor, "message.thread_list", resource_type="patient", resource_id=patient_id, patient_id=patient_id
    )
    db.session.commit()
    next_cursor = make_cursor(rows[-1].thread) if len(found) > limit else None
    return rows, next_cursor


def compose_choices(actor: Actor, patient_id: int) -> tuple[Patient, list[MessageTopic]]:
    """Who the patient can write to: their coach (if they have one) and the clinic's active topics."""
    return _own_patient(actor, patient_id), topics(actor.tenant_id, active_only=True)


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise MessageError("Write your message.", "body")
    if len(body) > BODY_MAX:
        raise MessageError(f"A message can be at most {BODY_MAX:,} characters.", "body")
    return body


def _check_uploads(uploads: list[Upload]) -> None:
    """Refuse, before anything is stored, more files than allowed and anything but photos and PDFs."""
    from ...files import checks  # noqa: PLC0415 - the file machinery only when files come

    if len(uploads) > MAX_ATTACHMENTS:
        raise MessageError(f"Attach at most {MAX_ATTACHMENTS} files to one message.", "files")
    for upload in uploads:
        head = upload.stream.read(checks.HEAD_BYTES)
        upload.stream.seek(0)
        try:
            kind = checks.sniff(head, upload.filename).kind
        except checks.ContentRejected as error:
            raise MessageError(f"{upload.filename}: {error.reason}", "files") from error
        if kind not in ATTACHMENT_KINDS:
            raise MessageError(f"{upload.filename}: only photos and PDF files can be attached.", "files")


def _attach(actor: Actor, patient_id: int, message: Message, uploads: list[Upload]) -> None:
    from ...files import patient_files  # noqa: PLC0415 - its implementation imports the files area

    for upload in uploads:
        attachment = patient_files.store_patient_file(
            actor, patient_id, upload.filename, upload.stream, source=patient_files.MESSAGE
        )
        db.session.add(
            MessageAttachment(tenant_id=actor.tenant_id, message_id=message.id, attachment_id=attachment.id)
        )
    db.session.flush()


def _route(tenant_id: int, patient: Patient, topic_id: int | None) -> dict:
    if topic_id is not None:
        topic = get_scoped(MessageTopic, topic_id, tenant_id)
        if topic is None or not topic.active:
            raise MessageError("Choose who to write to.", "to")
        return {
            "topic_id": topic.id,
            "assignee_id": None,
            "pool_roles": list(topic.pool_roles),
            "pool_name": topic.name,
        }
    coach = get_scoped(User, patient.assigned_coach_id, tenant_id) if patient.assigned_coach_id else None
    if coach is not None and coach.active and coach.is_staff:
        return {"topic_id": None, "assignee_id": coach.id, "pool_roles": None, "pool_name": None}
    name, roles = DEFAULT_POOL
    return {"topic_id": None, "assignee_id": None, "pool_roles": list(roles), "pool_name": name}


def _add_message(actor: Actor, thread: Thread, body: str, *, from_patient: bool) -> Message:
    """The message, the thread's newest-message columns (a guarded UPDATE: of two racing sends the later
    id wins) and the author's own read state."""
    now = utcnow()
    message = Message(
        tenant_id=thread.tenant_id,
        thread_id=thread.id,
        author_id=actor.user_id,
        from_patient=from_patient,
        body=body,
        created_at=now,
    )
    db.session.add(message)
    db.session.flush()
    newer = func.coalesce(Thread.last_message_id, 0) < message.id
    db.session.execute(
        update(Thread)
        .where(Thread.id == thread.id, Thread.tenant_id == thread.tenant_id)
        .values(
            message_count=Thread.message_count + 1,
            last_message_id=case((newer, message.id), else_=Thread.last_message_id),
            last_message_at=case((newer, now), else_=Thread.last_message_at),
            last_author_id=case((newer, actor.user_id), else_=Thread.last_author_id),
        )
        .execution_options(synchronize_session=False)
    )
    _mark_read(actor, thread.id, message.id)
    db.session.refresh(thread)
    return message


def _mark_read(actor: Actor, thread_id: int, message_id: int | None) -> None:
    """Move the reader's mark forward to `message_id` (never back)."""
    if not message_id:
        return
    now = utcnow()
    inserted = insert_unless_exists(
        ThreadRead,
        {
            "tenant_id": actor.tenant_id,
            "thread_id": thread_id,
            "user_id": actor.user_id,
            "last_read_message_id": message_id,
            "read_at": now,
        },
        ["thread_id", "user_id"],
    )
    if not inserted:
        db.session.execute(
            update(ThreadRead)
            .where(
                ThreadRead.thread_id == thread_id,
                ThreadRead.user_id == actor.user_id,
                ThreadRead.tenant_id == actor.tenant_id,
                ThreadRead.last_read_message_id < message_id,
            )
            .values(last_read_message_id=message_id, read_at=now)
            .execution_options(synchronize_session=False)
        )


def _refuse_when_off(patient: Patient) -> None:
    if not patient.messaging_enabled:
        raise MessageError(MESSAGING_OFF_TEXT, "body")


def _raise_sent(actor: Actor, thread: Thread, message: Message) -> None:
    events.raise_event(
        actor,
        SENT_KIND,
        patient_id=thread.patient_id,
        subject=("thread", thread.id),
        thread_id=thread.id,
        message_id=message.id,
        topic_id=thread.topic_id,
    )


def start_thread(
    actor: Actor,
    patient_id: int,
    *,
    subject: str,
    body: str,
    topic_id: int | None = None,
    uploads: list[Upload] | None = None,
) -> Thread:
    """A new thread from the patient, to their coach (default) or to a topic's pool."""
    patient = _own_patient(actor, patient_id)
    _refuse_when_off(patient)
    subject = (subject or "").strip()
    if not subject:
        raise MessageError("Give your message a subject.", "subject")
    if len(subject) > SUBJECT_MAX:
        raise MessageError(f"A subject can be at most {SUBJECT_MAX} characters.", "subject")
    body = _clean_body(body)
    uploads = uploads or []
    _check_uploads(uploads)
    route = _route(actor.tenant_id, patient, topic_id)
    try:
        thread = Thread(
            tenant_id=actor.tenant_id,
            patient_id=patient.id,
            subject=subject,
            status=NEW,
            created_by_id=actor.user_id,
            last_message_at=utcnow(),
            message_count=0,
            **route,
        )
        db.session.add(thread)
        db.session.flush()
        message = _add_message(actor, thread, body, from_patient=True)
        _attach(actor, patient.id, message, uploads)
        record_event(
            actor,
            "message.thread_create",
            resource_type="thread",
            resource_id=thread.id,
            patient_id=patient.id,
        )
        record_event(
            actor, "message.send", resource_type="message", resource_id=message.id, patient_id=patient.id
        )
        _raise_sent(actor, thread, message)
    except Exception:
        db.session.rollback()
        events.discard_pending()
        raise
    events.commit()
    return thread


def patient_reply(
    actor: Actor, patient_id: int, thread_id: int, body: str, uploads: list[Upload] | None = None
) -> Message:
    """The patient writes again in their thread: it is the care team's turn (status new, even if closed)."""
    thread = _own_thread(actor, patient_id, thread_id)
    _refuse_when_off(thread.patient)
    body = _clean_body(body)
    uploads = uploads or []
    _check_uploads(uploads)
    try:
        message = _add_message(actor, thread, body, from_patient=True)
        _attach(actor, patient_id, message, uploads)
        thread.status = NEW
        record_event(
            actor, "message.send", resource_type="message", resource_id=message.id, patient_id=patient_id
        )
        _raise_sent(actor, thread, message)
    except Exception:
        db.session.rollback()
        events.discard_pending()
        raise
    events.commit()
    return message


def _load_thread_view(actor: Actor, thread: Thread, action: str) -> ThreadView:
    before = db.session.scalar(
        select(ThreadRead.last_read_message_id).where(
            ThreadRead.tenant_id == actor.tenant_id,
            ThreadRead.thread_id == thread.id,
            ThreadRead.user_id == actor.user_id,
        )
    )
    messages = list(
        db.session.scalars(
            scoped(Message, actor.tenant_id)
            .where(Message.thread_id == thread.id)
            .options(
                selectinload(Message.author),
                selectinload(Message.attachment_links).selectinload(MessageAttachment.attachment),
            )
            .order_by(Message.id)
        ).unique()
    )
    _mark_read(actor, thread.id, thread.last_message_id)
    record_event(actor, action, resource_type="thread", resource_id=thread.id, patient_id=thread.patient_id)
    db.session.commit()
    return ThreadView(thread, messages, unread_from=(before or 0) + 1)


def patient_thread(actor: Actor, patient_id: int, thread_id: int) -> ThreadView:
    """The patient's thread with its messages; reading it marks it read for them (audited)."""
    return _load_thread_view(actor, _own_thread(actor, patient_id, thread_id), "message.thread_view")


def unread_message_count(tenant_id: int, patient_id: int, user_id: int) -> int:
    """Messages from the care team in the patient's threads that this reader has not read (one query)."""
    return (
        db.session.scalar(
            select(func.count(Message.id))
            .join(Thread, and_(Thread.id == Message.thread_id, Thread.tenant_id == Message.tenant_id))
            .outerjoin(ThreadRead, _reads_join(user_id))
            .where(
                Message.tenant_id == tenant_id,
                Thread.patient_id == patient_id,
                Message.author_id != user_id,
                Message.id > func.coalesce(ThreadRead.last_read_message_id, 0),
            )
        )
        or 0
    )


# --- the staff's side --------------------------------------------------------------------------------------


def _scope_filter(scope: str, user: User):
    if scope == "mine":
        return Thread.assignee_id == user.id
    if scope == "pools":
        # Roles are plain identifiers, so '"nurse"' in the JSON text is that role in the list, on SQLite
        # and PostgreSQL alike.
        return and_(Thread.assignee_id.is_(None), cast(Thread.pool_roles, String).like(f'%"{user.role}"%'))
    return True


def inbox(
    actor: Actor,
    *,
    status: str = NEW,
    scope: str = "all",
    cursor: tuple[datetime, int] | None = None,
    limit: int = PAGE_SIZE,
) -> InboxPage:
    """One page of the clinic's threads of a status in a scope (mine, my pools, all), with the number of
    threads and unread threads per status: two queries whatever the number of threads."""
    require(actor, "care.inbox")
    user = get_scoped(User, actor.user_id, actor.tenant_id)
    status = status if status in THREAD_STATUSES else NEW
    scope = scope if scope in SCOPES else "all"
    unread = _unread_expression()
    Assignee = User.__table__.alias("assignee")
    found = db.session.execute(
        select(Thread, unread, Patient.first_name, Patient.last_name, Patient.mrn, Assignee.c.full_name)
        .join(Patient, and_(Patient.id == Thread.patient_id, Patient.tenant_id == Thread.tenant_id))
        .outerjoin(
            Assignee, and_(Assignee.c.id == Thread.assignee_id, Assignee.c.tenant_id == Thread.tenant_id)
        )
        .outerjoin(ThreadRead, _reads_join(user.id))
        .where(
            Thread.tenant_id == actor.tenant_id,
            Thread.status == status,
            _scope_filter(scope, user),
            _before(cursor),
        )
        .order_by(Thread.last_message_at.desc(), Thread.id.desc())
        .limit(limit + 1)
    ).all()
    rows = [
        ThreadRow(thread, bool(is_unread), f"{first} {last}", mrn, assignee)
        for thread, is_unread, first, last, mrn, assignee in found[:limit]
    ]
    counted = db.session.execute(
        select(Thread.status, func.count(Thread.id), func.sum(case((unread, 1), else_=0)))
        .outerjoin(ThreadRead, _reads_join(user.id))
        .where(Thread.tenant_id == actor.tenant_id, _scope_filter(scope, user))
        .group_by(Thread.status)
    ).all()
    counts = {key: (0, 0) for key in THREAD_STATUSES}
    counts.update({key: (total, int(unread_count or 0)) for key, total, unread_count in counted})
    record_event(actor, "message.inbox_list", resource_type="inbox", resource_id=status)
    db.session.commit()
    next_cursor = make_cursor(rows[-1].thread) if len(found) > limit else None
    return InboxPage(rows, counts, next_cursor, status, scope)


def _staff_thread(actor: Actor, thread_id: int) -> Thread:
    require(actor, "care.inbox")
    thread = get_scoped(Thread, thread_id, actor.tenant_id)
    if thread is None:
        raise NotFound(thread_id)
    return thread


def staff_thread(actor: Actor, thread_id: int) -> ThreadView:
    """A thread for a staff member; reading it marks it read for them alone (audited)."""
    view = _load_thread_view(actor, _staff_thread(actor, thread_id), "message.thread_view")
    view.topics = topics(actor.tenant_id, active_only=True)
    return view


def staff_reply(actor: Actor, thread_id: int, body: str, uploads: list[Upload] | None = None) -> Message:
    """A reply from the care team; its event tells the patient and sets the thread waiting on them."""
    thread = _staff_thread(actor, thread_id)
    body = _clean_body(body)
    uploads = uploads or []
    _check_uploads(uploads)
    try:
        message = _add_message(actor, thread, body, from_patient=False)
        _attach(actor, thread.patient_id, message, uploads)
        if thread.status == CLOSED:
            thread.status = WAITING  # a reply reopens it, waiting on the patient
        record_event(
            actor,
            "message.reply",
            resource_type="message",
            resource_id=message.id,
            patient_id=thread.patient_id,
        )
        events.raise_event(
            actor,
            REPLIED_KIND,
            patient_id=thread.patient_id,
            subject=("thread", thread.id),
            thread_id=thread.id,
            message_id=message.id,
        )
        complete_tasks_about(actor, TASK_KIND, "thread", thread.id, "Answered in the inbox.")
    except Exception:
        db.session.rollback()
        events.discard_pending()
        raise
    events.commit()
    return message


def reassign(
    actor: Actor, thread_id: int, *, assignee_id: int | None = None, topic_id: int | None = None
) -> Thread:
    """Give the thread to a colleague, or to a topic's pool."""
    thread = _staff_thread(actor, thread_id)
    if assignee_id is not None:
        person = get_scoped(User, assignee_id, actor.tenant_id)
        if person is None or not person.active or not can(person, "care.inbox"):
            raise MessageError("Choose a colleague to give the thread to.", "assignee")
        thread.assignee_id, thread.pool_roles, thread.pool_name = person.id, None, None
    elif topic_id is not None:
        topic = get_scoped(MessageTopic, topic_id, actor.tenant_id)
        if topic is None or not topic.active:
            raise MessageError("Choose a topic to give the thread to.", "assignee")
        thread.assignee_id, thread.topic_id = None, topic.id
        thread.pool_roles, thread.pool_name = list(topic.pool_roles), topic.name
    else:
        raise MessageError("Choose a colleague or a topic.", "assignee")
    record_event(
        actor,
        "message.thread_reassign",
        resource_type="thread",
        resource_id=thread.id,
        patient_id=thread.patient_id,
        changed_fields=["assignee_id", "pool_roles"],
    )
    db.session.commit()
    return thread


def close_thread(actor: Actor, thread_id: int) -> Thread:
    thread = _staff_thread(actor, thread_id)
    thread.status = CLOSED
    record_event(
        actor,
        "message.thread_close",
        resource_type="thread",
        resource_id=thread.id,
        patient_id=thread.patient_id,
    )
    db.session.commit()
    return thread


def colleagues(actor: Actor) -> list[User]:
    """Who a thread can be given to: the clinic's active staff."""
    return [
        user
        for user in db.session.scalars(
            scoped(User, actor.tenant_id).where(User.active.is_(True)).order_by(User.full_name)
        )
        if can(user, "care.inbox")
    ]


def set_messaging(actor: Actor, patient_id: int, enabled: bool) -> Patient:
    """Turn the portal's messages on or off for a patient (audited)."""
    require(actor, "care.inbox")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    patient.messaging_enabled = enabled
    record_event(
        actor,
        "patient.messaging_changed",
        resource_type="patient",
        resource_id=patient.id,
        patient_id=patient.id,
        changed_fields=["messaging_enabled"],
    )
    db.session.commit()
    return patient


def patient_summary(actor: Actor, patient_id: int, limit: int = 5) -> list[Thread]:
    """The patient's latest threads, for the staff patient page (its own patient.view covers the read)."""
    require(actor, "care.inbox")
    return list(
        db.session.scalars(
            scoped(Thread, actor.tenant_id)
            .where(Thread.patient_id == patient_id)
            .order_by(Thread.last_message_at.desc(), Thread.id.desc())
            .limit(limit)
        )
    )


def attachment_of_thread(actor: Actor, thread: Thread, attachment_id: int):
    """The attachment if it is on a message of `thread`, else NotFound."""
    link = db.session.scalar(
        scoped(MessageAttachment, actor.tenant_id)
        .join(
            Message,
            and_(
                Message.id == MessageAttachment.message_id, Message.tenant_id == MessageAttachment.tenant_id
            ),
        )
        .where(Message.thread_id == thread.id, MessageAttachment.attachment_id == attachment_id)
    )
    if link is None or link.attachment is None or link.attachment.patient_id != thread.patient_id:
        raise NotFound(attachment_id)
    return link.attachment


def open_attachment(actor: Actor, thread_id: int, attachment_id: int, *, patient_id: int | None = None):
    """The current version of a message's attachment, checked to belong to the thread (and, for a patient,
    the thread to them), handed out by files.deliver_version as a download (a files.services.Delivery)."""
    from ...files import services as files  # noqa: PLC0415

    thread = (
        _own_thread(actor, patient_id, thread_id)
        if patient_id is not None
        else _staff_thread(actor, thread_id)
    )
    attachment = attachment_of_thread(actor, thread, attachment_id)
    version = attachment.current_version
    if version is None:
        raise NotFound(attachment_id)
    # The same checks as every file: scan state, checksum (a mismatch audited), the access log, audit.
    return files.deliver_version(actor, version, inline=False)
