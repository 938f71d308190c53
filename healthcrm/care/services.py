"""Tasks for clinic staff, made from portal events (one task of a kind per event), and what staff do with
them: claim (a guarded UPDATE: of two people claiming at once, one gets it and the other is told who has
it), reassign, wait on the patient (the due time pauses) and resume, complete with a note. Every action is
audited in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, cast, func, select, update
from sqlalchemy.orm import selectinload

from ..accounts.models import STAFF_ROLES, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..errors import Conflict, DomainError, NotFound
from ..extensions import db
from ..paging import PageWindow
from ..portal.models import PortalEvent
from ..tenancy import get_scoped, scoped
from . import targets
from .models import DONE, OPEN, WAITING, Task

TASK_PAGE_SIZE = 50
NOTE_MAX_CHARS = 2000
FILTERS = {
    "mine": "Mine",
    "pools": "My pools",
    "overdue": "Overdue",
    "done": "Done",
    "all": "All open",
}
DEFAULT_FILTER = "mine"


@dataclass
class TaskPage(PageWindow):
    items: list[Task]
    total: int
    page: int
    per_page: int
    filter_name: str


class TaskError(DomainError):
    pass


class TaskTaken(Conflict):
    """Someone else claimed the task first."""


def open_task(
    event: PortalEvent,
    kind: str,
    title: str,
    *,
    link: str | None = None,
    assignee_id: int | None = None,
    pool_roles: list[str] | None = None,
    pool_name: str | None = None,
    due_at: datetime | None = None,
) -> Task | None:
    """Make the task for `event` inside the handling transaction; a second call for the same event and kind
    adds nothing (the unique key on event and kind) and returns the task that exists. Without `due_at`, the
    task is due after the clinic's response target for `kind`, counted in clinic hours."""
    if due_at is None:
        tenant = db.session.get(Tenant, event.tenant_id)
        due_at = targets.due_time(tenant, kind, event.created_at)
    values = {
        "tenant_id": event.tenant_id,
        "patient_id": event.patient_id,
        "event_id": event.id,
        "kind": kind,
        "title": title[:200],
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "link": link,
        "assignee_id": assignee_id,
        "pool_roles": pool_roles,
        "pool_name": pool_name,
        "status": OPEN,
        "due_at": due_at,
        "created_at": event.created_at,
    }
    insert_unless_exists(Task, values, ["event_id", "kind"])
    return db.session.scalar(
        scoped(Task, event.tenant_id).where(Task.event_id == event.id, Task.kind == kind)
    )


def complete_tasks_about(actor: Actor, kind: str, subject_type: str, subject_id: int, note: str) -> int:
    """Complete the open tasks of `kind` about one item, in the caller's transaction (no commit): the
    action that answers them (a reply, a refill decided, a change request decided) is what did the task.
    Each is completed once (a guarded UPDATE) and audited. Returns how many were completed."""
    tasks = db.session.scalars(
        scoped(Task, actor.tenant_id).where(
            Task.kind == kind,
            Task.subject_type == subject_type,
            Task.subject_id == subject_id,
            Task.status != DONE,
        )
    ).all()
    completed = 0
    for task in tasks:
        if _guarded(
            actor,
            task.id,
            Task.status != DONE,
            status=DONE,
            completed_at=utcnow(),
            completed_by_id=actor.user_id,
            completion_note=note,
            paused_at=None,
        ):
            _audit(actor, "task.completed", task, ("status", "completion_note"))
            completed += 1
    return completed


# --- the list --------------------------------------------------------------------------------------------


def _in_pool(role: str | None):
    # pool_roles is a JSON list of role names, stored as its text on both databases ('["nurse", "coach"]').
    return cast(Task.pool_roles, String).like(f'%"{role}"%')


def task_query(actor: Actor, filter_name: str, now: datetime):
    statement = scoped(Task, actor.tenant_id)
    if filter_name == "done":
        return statement.where(Task.status == DONE).order_by(Task.completed_at.desc(), Task.id.desc())
    statement = statement.where(Task.status != DONE)
    if filter_name == "mine":
        statement = statement.where(Task.assignee_id == actor.user_id)
    elif filter_name == "pools":
        statement = statement.where(Task.assignee_id.is_(None), _in_pool(actor.role))
    elif filter_name == "overdue":
        statement = statement.where(Task.status == OPEN, Task.due_at < now)
    # Soonest due first; tasks without a due time last.
    return statement.order_by(Task.due_at.is_(None), Task.due_at, Task.id)


def list_tasks(actor: Actor, filter_name: str = DEFAULT_FILTER, page: int = 1) -> TaskPage:
    """One page of the clinic's tasks under one of FILTERS, audited as a list read."""
    if filter_name not in FILTERS:
        filter_name = DEFAULT_FILTER
    now = utcnow()
    statement = task_query(actor, filter_name, now)
    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    page = max(1, page)
    items = list(
        db.session.scalars(
            statement.options(selectinload(Task.patient), selectinload(Task.assignee))
            .limit(TASK_PAGE_SIZE)
            .offset((page - 1) * TASK_PAGE_SIZE)
        )
    )
    record_event(actor, "task.list", resource_type="care_task")
    db.session.commit()
    return TaskPage(items, total, page, TASK_PAGE_SIZE, filter_name)


def filter_counts(actor: Actor) -> dict[str, int]:
    now = utcnow()
    counts = {}
    for name in ("mine", "pools", "overdue"):
        statement = task_query(actor, name, now).order_by(None)
        counts[name] = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    return counts


@dataclass(frozen=True)
class Lateness:
    overdue: bool
    text: str  # "Due in 3 h", "Overdue by 2 days 4 h", "Paused: 5 h left"


def lateness(task: Task, now: datetime | None = None) -> Lateness | None:
    """How the task stands against its due time, in words for the list."""
    from .hours import describe_minutes  # noqa: PLC0415 - small, pure

    now = now or utcnow()
    if task.status == DONE:
        return None
    if task.status == WAITING:
        left = task.remaining_minutes or 0
        text = f"Paused: {describe_minutes(left)} left" if left > 0 else "Paused (was overdue)"
        return Lateness(False, text)
    if task.due_at is None:
        return None
    minutes = int((task.due_at - now).total_seconds() // 60)
    if minutes < 0:
        return Lateness(True, f"Overdue by {describe_minutes(-minutes)}")
    return Lateness(False, f"Due in {describe_minutes(minutes)}")


def get_task(actor: Actor, task_id: int) -> Task:
    task = get_scoped(Task, task_id, actor.tenant_id)
    if task is None:
        raise NotFound()
    return task


def staff_choices(tenant_id: int) -> list[User]:
    """The people a task can be given to: the clinic's active staff."""
    return list(
        db.session.scalars(
            scoped(User, tenant_id)
            .where(User.role.in_(STAFF_ROLES), User.active.is_(True))
            .order_by(User.full_name)
        )
    )


# --- actions ---------------------------------------------------------------------------------------------


def _guarded(actor: Actor, task_id: int, *conditions, **values) -> bool:
    result = db.session.execute(
        update(Task)
        .where(Task.id == task_id, Task.tenant_id == actor.tenant_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _audit(actor: Actor, action: str, task: Task, changed: tuple[str, ...] = ()) -> None:
    record_event(
        actor,
        action,
        resource_type="care_task",
        resource_id=task.id,
        patient_id=task.patient_id,
        changed_fields=changed or None,
    )


def _reload(actor: Actor, task_id: int) -> Task:
    db.session.expire_all()
    return get_task(actor, task_id)


def may_claim(actor: Actor, task: Task) -> bool:
    return (
        task.status != DONE
        and task.assignee_id is None
        and (actor.role == "admin" or actor.role in (task.pool_roles or []))
    )


def claim_task(actor: Actor, task_id: int) -> Task:
    """Take a pool's task. Of two people claiming at once exactly one gets it: the UPDATE only matches while
    nobody holds it; the other is told who does (`TaskTaken`)."""
    task = get_task(actor, task_id)
    if task.status == DONE:
        raise TaskError("This task is already done.")
    if not (actor.role == "admin" or actor.role in (task.pool_roles or []) or task.assignee_id is not None):
        raise TaskError("This task belongs to a pool you are not in.")
    taken = _guarded(
        actor,
        task_id,
        Task.assignee_id.is_(None),
        Task.status != DONE,
        assignee_id=actor.user_id,
        claimed_at=utcnow(),
    )
    if not taken:
        db.session.rollback()
        task = _reload(actor, task_id)
        if task.assignee_id == actor.user_id:
            return task
        holder = task.assignee.full_name if task.assignee else "someone else"
        raise TaskTaken(f"{holder} has already claimed this task.")
    task = _reload(actor, task_id)
    _audit(actor, "task.claimed", task, ("assignee_id",))
    db.session.commit()
    return task


def reassign_task(actor: Actor, task_id: int, user_id: int | None) -> Task:
    """Give the task to one person of the clinic's staff."""
    task = get_task(actor, task_id)
    if task.status == DONE:
        raise TaskError("This task is already done.")
    person = get_scoped(User, user_id, actor.tenant_id) if user_id else None
    if person is None or not person.is_staff or not person.active:
        raise TaskError("Choose a person of this clinic's staff.", "assignee_id")
    if not _guarded(actor, task_id, Task.status != DONE, assignee_id=person.id, claimed_at=utcnow()):
        db.session.rollback()
        raise TaskError("This task was completed meanwhile.")
    task = _reload(actor, task_id)
    _audit(actor, "task.reassigned", task, ("assignee_id",))
    db.session.commit()
    return task


def wait_on_patient(actor: Actor, task_id: int) -> Task:
    """Pause the task's clock while the clinic waits for the patient: keep the clinic minutes left."""
    task = get_task(actor, task_id)
    if task.status != OPEN:
        raise TaskError("Only an open task can wait on the patient.")
    now = utcnow()
    tenant = db.session.get(Tenant, actor.tenant_id)
    if task.due_at is None:
        remaining = None
    elif task.due_at >= now:
        remaining = targets.clinic_minutes_between(tenant, now, task.due_at)
    else:
        # Already late: remember by how much (as a negative number of minutes), so resuming keeps it late.
        remaining = -int((now - task.due_at).total_seconds() // 60)
    if not _guarded(
        actor, task_id, Task.status == OPEN, status=WAITING, paused_at=now, remaining_minutes=remaining
    ):
        db.session.rollback()
        raise TaskError("This task changed meanwhile; reload the list.")
    task = _reload(actor, task_id)
    _audit(actor, "task.waiting", task, ("status",))
    db.session.commit()
    return task


def resume_task(actor: Actor, task_id: int) -> Task:
    """The patient answered: the clock runs again from now with the clinic minutes that were left."""
    task = get_task(actor, task_id)
    if task.status != WAITING:
        raise TaskError("This task is not waiting on the patient.")
    now = utcnow()
    tenant = db.session.get(Tenant, actor.tenant_id)
    remaining = task.remaining_minutes
    if remaining is None:
        due = task.due_at
    elif remaining >= 0:
        due = targets.add_clinic_hours(tenant, now, remaining)
    else:
        due = now - timedelta(minutes=-remaining)
    if not _guarded(
        actor,
        task_id,
        Task.status == WAITING,
        status=OPEN,
        paused_at=None,
        remaining_minutes=None,
        due_at=due,
    ):
        db.session.rollback()
        raise TaskError("This task changed meanwhile; reload the list.")
    task = _reload(actor, task_id)
    _audit(actor, "task.resumed", task, ("status", "due_at"))
    db.session.commit()
    return task


def complete_task(actor: Actor, task_id: int, note: str = "") -> Task:
    """Mark the task done, with what was done."""
    note = (note or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        raise TaskError(f"Keep the note under {NOTE_MAX_CHARS} characters.", "note")
    get_task(actor, task_id)
    if not _guarded(
        actor,
        task_id,
        Task.status != DONE,
        status=DONE,
        completed_at=utcnow(),
        completed_by_id=actor.user_id,
        completion_note=note or None,
        paused_at=None,
    ):
        db.session.rollback()
        raise TaskError("This task is already done.")
    task = _reload(actor, task_id)
    _audit(actor, "task.completed", task, ("status", "completion_note"))
    db.session.commit()
    return task


def open_tasks_for_patient(actor: Actor, patient_id: int) -> list[Task]:
    return list(
        db.session.scalars(
            scoped(Task, actor.tenant_id)
            .where(Task.patient_id == patient_id, Task.status != DONE)
            .order_by(Task.due_at)
        )
    )


__all__ = [
    "FILTERS",
    "TaskError",
    "TaskTaken",
    "claim_task",
    "complete_task",
    "list_tasks",
    "open_task",
    "reassign_task",
    "resume_task",
    "wait_on_patient",
]
