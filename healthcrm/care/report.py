"""The portal report for admins: how many patients were invited, registered and active lately; messages,
refills and tasks per week; and how long the first reply to a thread takes against the message target.

Counted from the portal's events ("message.sent", "message.replied", "refill.requested"), the tasks, the
users and their sessions, so the report does not depend on each feature's own tables. Counts are grouped
by day in the database (one query per source, however many rows) and folded into the clinic's weeks here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from ..accounts.models import PATIENT, AccountToken, Tenant, User, UserSession
from ..audit.services import Actor, record_event
from ..clock import clinic_today, utcnow
from ..extensions import db
from ..portal.models import PortalEvent
from . import targets
from .models import Task

WEEKS = 12
ACTIVE_DAYS = 30
REPLY_WINDOW_DAYS = 90
SENT, REPLIED, REFILL = "message.sent", "message.replied", "refill.requested"


@dataclass
class Week:
    starts: date
    messages: int = 0
    replies: int = 0
    refills: int = 0
    tasks: int = 0


@dataclass
class PortalReport:
    invited: int
    registered: int
    active: int
    weeks: list[Week]
    replied_threads: int
    median_reply_minutes: int | None  # in clinic hours' minutes
    target_minutes: int
    within_target: int
    unanswered_threads: int
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def within_target_percent(self) -> int | None:
        if not self.replied_threads:
            return None
        return round(100 * self.within_target / self.replied_threads)


def _per_day(column, *conditions) -> dict[date, int]:
    day = func.date(column)
    rows = db.session.execute(select(day, func.count()).where(*conditions).group_by(day)).all()
    counts: dict[date, int] = {}
    for value, count in rows:
        key = value if isinstance(value, date) else date.fromisoformat(str(value))
        counts[key] = count
    return counts


def portal_report(actor: Actor) -> PortalReport:
    """The report for the actor's clinic (audited as a read of the clinic's portal figures)."""
    tenant_id = actor.tenant_id
    tenant = db.session.get(Tenant, tenant_id)
    now = utcnow()
    patients = (User.tenant_id == tenant_id, User.role == PATIENT)
    invited = (
        db.session.scalar(
            select(func.count(func.distinct(AccountToken.user_id)))
            .join(User, User.id == AccountToken.user_id)
            .where(AccountToken.tenant_id == tenant_id, AccountToken.purpose == "invite", *patients)
        )
        or 0
    )
    registered = (
        db.session.scalar(
            select(func.count()).select_from(User).where(*patients, User.password_hash.is_not(None))
        )
        or 0
    )
    active = (
        db.session.scalar(
            select(func.count(func.distinct(UserSession.user_id)))
            .join(User, User.id == UserSession.user_id)
            .where(
                UserSession.tenant_id == tenant_id,
                UserSession.last_seen_at >= now - timedelta(days=ACTIVE_DAYS),
                *patients,
            )
        )
        or 0
    )

    today = clinic_today(tenant.timezone)
    first_monday = today - timedelta(days=today.weekday()) - timedelta(weeks=WEEKS - 1)
    since = datetime.combine(first_monday, datetime.min.time()) - timedelta(days=1)
    weeks = [Week(first_monday + timedelta(weeks=i)) for i in range(WEEKS)]

    def fold(counts: dict[date, int], attribute: str) -> None:
        for day, count in counts.items():
            index = (day - first_monday).days // 7
            if 0 <= index < WEEKS:
                setattr(weeks[index], attribute, getattr(weeks[index], attribute) + count)

    for kind, attribute in ((SENT, "messages"), (REPLIED, "replies"), (REFILL, "refills")):
        fold(
            _per_day(
                PortalEvent.created_at,
                PortalEvent.tenant_id == tenant_id,
                PortalEvent.kind == kind,
                PortalEvent.created_at >= since,
            ),
            attribute,
        )
    fold(_per_day(Task.created_at, Task.tenant_id == tenant_id, Task.created_at >= since), "tasks")

    replies = first_replies(tenant, now - timedelta(days=REPLY_WINDOW_DAYS))
    target_minutes = targets.target_hours(tenant_id, "message") * 60
    answered = [minutes for minutes in replies.values() if minutes is not None]
    record_event(actor, "care.report_viewed", resource_type="tenant", resource_id=tenant_id)
    db.session.commit()
    return PortalReport(
        invited=max(invited, registered),
        registered=registered,
        active=active,
        weeks=weeks,
        replied_threads=len(answered),
        median_reply_minutes=int(statistics.median(answered)) if answered else None,
        target_minutes=target_minutes,
        within_target=sum(1 for minutes in answered if minutes <= target_minutes),
        unanswered_threads=sum(1 for minutes in replies.values() if minutes is None),
    )


def first_replies(tenant: Tenant, since: datetime) -> dict[int, int | None]:
    """{thread id: clinic minutes from its first "message.sent" to its first "message.replied" after it
    (None: not answered yet)}, for threads first written to since `since`."""
    first_sent = (
        select(PortalEvent.subject_id, func.min(PortalEvent.created_at).label("at"))
        .where(
            PortalEvent.tenant_id == tenant.id, PortalEvent.kind == SENT, PortalEvent.subject_type == "thread"
        )
        .group_by(PortalEvent.subject_id)
        .subquery()
    )
    first_reply = (
        select(PortalEvent.subject_id, func.min(PortalEvent.created_at).label("at"))
        .join(first_sent, first_sent.c.subject_id == PortalEvent.subject_id)
        .where(
            PortalEvent.tenant_id == tenant.id,
            PortalEvent.kind == REPLIED,
            PortalEvent.subject_type == "thread",
            PortalEvent.created_at >= first_sent.c.at,
        )
        .group_by(PortalEvent.subject_id)
        .subquery()
    )
    rows = db.session.execute(
        select(first_sent.c.subject_id, first_sent.c.at, first_reply.c.at)
        .outerjoin(first_reply, first_reply.c.subject_id == first_sent.c.subject_id)
        .where(first_sent.c.at >= since)
    ).all()
    return {
        thread: None if replied is None else targets.clinic_minutes_between(tenant, sent, replied)
        for thread, sent, replied in rows
    }
