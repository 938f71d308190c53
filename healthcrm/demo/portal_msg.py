"""Demo messages: the clinic's topics, and a few threads with replies for the demo patients who use the
portal, some of them unread (by the patient, or by the care team)."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from ..accounts.models import ADMIN, COACH, DOCTOR, FRONT_DESK, NURSE, Tenant, User
from ..clock import utcnow
from ..extensions import db
from ..patients.models import Patient
from ..portal.messages.models import NEW, WAITING, Message, MessageTopic, Thread, ThreadRead

TOPICS = (("Billing", [FRONT_DESK, ADMIN]), ("Medication question", [NURSE, DOCTOR]))
# (subject, topic name or None for the coach, [(from the patient?, body)], whether the patient read the last)
CONVERSATIONS = (
    (
        "Walking plan",
        None,
        [
            (
                True,
                "I managed three walks this week but my knee aches after the longer one. Keep going?",
            ),
            (
                False,
                "Well done on the walks! Keep them to 20 minutes for now and tell me how the knee feels.",
            ),
        ],
        False,
    ),
    (
        "Question about my bill",
        "Billing",
        [
            (True, "I was charged twice for my visit last month. Could you check?"),
            (False, "Thank you for telling us. We found the double charge and refunded it; allow 5 days."),
            (True, "Thanks, I see it now."),
        ],
        True,
    ),
    (
        "Side effects",
        "Medication question",
        [(True, "Since starting the new tablets I feel a bit dizzy in the mornings. Is that normal?")],
        True,
    ),
)


def seed(tenant: Tenant, patients: list[Patient], staff: dict[str, User], rng: random.Random) -> None:
    """Add the topics and the threads (no commit; the demo loader commits the clinic at once)."""
    topics = {}
    for name, roles in TOPICS:
        topic = MessageTopic(tenant_id=tenant.id, name=name, pool_roles=roles, active=True)
        db.session.add(topic)
        topics[name] = topic
    db.session.flush()
    ids = [p.id for p in patients]
    portal_users = list(
        db.session.scalars(
            select(User).where(User.tenant_id == tenant.id, User.patient_id.in_(ids)).order_by(User.id)
        )
    )
    by_patient = {p.id: p for p in patients}
    now = utcnow()
    for index, user in enumerate(portal_users[:3]):
        patient = by_patient[user.patient_id]
        for number, (subject, topic_name, lines, read) in enumerate(CONVERSATIONS[: 3 - index]):
            topic = topics.get(topic_name) if topic_name else None
            coach_id = patient.assigned_coach_id or staff[COACH].id
            answerer = (
                staff[FRONT_DESK] if topic_name == "Billing" else staff[NURSE] if topic else staff[COACH]
            )
            started = now - timedelta(days=2 + 3 * number + index, hours=rng.randint(0, 8))
            thread = Thread(
                tenant_id=tenant.id,
                patient_id=patient.id,
                subject=subject,
                topic_id=topic.id if topic else None,
                assignee_id=None if topic else coach_id,
                pool_roles=list(topic.pool_roles) if topic else None,
                pool_name=topic.name if topic else None,
                status=NEW,
                created_by_id=user.id,
                created_at=started,
                last_message_at=started,
                message_count=0,
            )
            db.session.add(thread)
            db.session.flush()
            message = None
            for step, (from_patient, body) in enumerate(lines):
                message = Message(
                    tenant_id=tenant.id,
                    thread_id=thread.id,
                    author_id=user.id if from_patient else answerer.id,
                    from_patient=from_patient,
                    body=body,
                    created_at=started + timedelta(hours=5 * step),
                )
                db.session.add(message)
                db.session.flush()
                author_id = message.author_id
                if from_patient or read:
                    _read(tenant.id, thread.id, user.id, message.id)
                if not from_patient:
                    _read(tenant.id, thread.id, answerer.id, message.id)
            thread.last_message_id, thread.last_message_at = message.id, message.created_at
            thread.last_author_id, thread.message_count = author_id, len(lines)
            thread.status = NEW if message.from_patient else WAITING
    db.session.flush()


def _read(tenant_id: int, thread_id: int, user_id: int, message_id: int) -> None:
    mark = db.session.scalar(
        select(ThreadRead).where(
            ThreadRead.tenant_id == tenant_id,
            ThreadRead.thread_id == thread_id,
            ThreadRead.user_id == user_id,
        )
    )
    if mark is None:
        db.session.add(
            ThreadRead(
                tenant_id=tenant_id, thread_id=thread_id, user_id=user_id, last_read_message_id=message_id
            )
        )
    else:
        mark.last_read_message_id = message_id
    db.session.flush()
