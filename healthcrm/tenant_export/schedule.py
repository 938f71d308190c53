"""Scheduled clinic exports: the schedule an admin sets (off, weekly or monthly, at an hour of the clinic's
clock), the arithmetic of its next slot, and the periodic sweep that starts each due slot's export once
and tells the admins when a scheduled export failed.

Slots are worked out on the clinic's wall clock (its zone, `clock.zone_info`) and stored as naive UTC, so
"Mondays at 04:00" stays 04:00 in the clinic across its clock changes. An hour the clocks skip (spring)
runs at the same distance after midnight, i.e. when the clocks have jumped (02:30 becomes 03:30); an hour
they repeat (autumn) runs once, the first time.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import and_, select, update

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import local_to_utc, utc_to_local, utcnow
from ..counters import insert_unless_exists
from ..errors import DomainError
from ..extensions import db
from ..jobs.models import FAILED, Job
from ..mail.services import compose, deliver
from ..permissions import require
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from . import services
from .models import FREQUENCIES, HOUR_DEFAULT, MONTH_DAY_MAX, MONTHLY, OFF, WEEKLY, ExportSchedule

log = logging.getLogger(__name__)

# The fields an admin sets, in the form's order (the audit event names those that changed).
FIELDS = ("frequency", "weekday", "month_day", "hour")
MONTH_DAY_HINT = (
    f"1 to {MONTH_DAY_MAX}, so that every month has the day: February has 28 days (29 in a leap year), "
    "and April, June, September and November have no 31st."
)


class ScheduleError(DomainError):
    """A schedule the form cannot take; nothing was saved."""


@dataclass(frozen=True)
class Rule:
    """What an admin chose: how often, which day, which hour of the clinic's clock."""

    frequency: str = OFF
    weekday: int = 0
    month_day: int = 1
    hour: int = HOUR_DEFAULT

    @classmethod
    def of(cls, schedule: ExportSchedule) -> Rule:
        return cls(schedule.frequency, schedule.weekday, schedule.month_day, schedule.hour)


# --- the next slot -----------------------------------------------------------------------------------------


def _next_month(day: date) -> date:
    return day.replace(year=day.year + 1, month=1) if day.month == 12 else day.replace(month=day.month + 1)


def next_run_after(rule: Rule, zone: str | None, after: datetime) -> datetime | None:
    """The first slot of `rule` strictly after `after` (naive UTC), as naive UTC; None when it is off.

    The day is counted on the clinic's calendar and the hour on its clock, and only then made UTC: adding
    a week of hours in UTC would move the export by an hour at every clock change.
    """
    if rule.frequency == OFF:
        return None
    day = utc_to_local(after, zone).date()
    if rule.frequency == WEEKLY:
        day += timedelta(days=(rule.weekday - day.weekday()) % 7)
    else:
        day = day.replace(day=rule.month_day)
    while True:
        # A wall-clock time, zoned by local_to_utc (fold 0: the first of a repeated hour).
        slot = local_to_utc(datetime.combine(day, time(rule.hour)), zone)
        if slot > after:
            return slot
        day = day + timedelta(days=7) if rule.frequency == WEEKLY else _next_month(day)


# --- the admin's form --------------------------------------------------------------------------------------


def current_schedule(actor: Actor) -> ExportSchedule:
    """The clinic's schedule; an unsaved one that is off when it has none."""
    require(actor, "clinic.export")
    found = db.session.scalar(scoped(ExportSchedule, actor.tenant_id))
    if found is not None:
        return found
    default = Rule()
    return ExportSchedule(
        tenant_id=actor.tenant_id, frequency=default.frequency, weekday=default.weekday,
        month_day=default.month_day, hour=default.hour, failure_reported=False,
    )  # fmt: skip


def last_scheduled_job(actor: Actor, schedule: ExportSchedule) -> Job | None:
    """The job the last taken slot started (it shows how that export went)."""
    require(actor, "clinic.export")
    return get_scoped(Job, schedule.last_job_id, actor.tenant_id)


def _whole_number(form: dict[str, str], field: str, low: int, high: int, message: str) -> int:
    raw = (form.get(field) or "").strip()
    if not raw.isdigit() or len(raw) > 2 or not low <= int(raw) <= high:
        raise ScheduleError(message, field)
    return int(raw)


def read_rule(form: dict[str, str], current: Rule) -> Rule:
    """The rule the form asks for (ScheduleError naming the field otherwise). Only the day field of the
    chosen frequency is read; the other keeps its value, for when the admin switches back."""
    frequency = (form.get("frequency") or "").strip()
    if frequency not in FREQUENCIES:
        raise ScheduleError("Choose how often: off, weekly or monthly.", "frequency")
    if frequency == OFF:
        return Rule(OFF, current.weekday, current.month_day, current.hour)
    # In the form's order: the day, then the hour.
    if frequency == WEEKLY:
        weekday = _whole_number(form, "weekday", 0, 6, "Choose a day of the week.")
        return Rule(WEEKLY, weekday, current.month_day, _hour(form))
    month_day = _whole_number(
        form, "month_day", 1, MONTH_DAY_MAX, f"Choose a day of the month from 1 to {MONTH_DAY_MAX}: "
        "the 29th, 30th and 31st are missing in some months, which would go without an export.",
    )  # fmt: skip
    return Rule(MONTHLY, current.weekday, month_day, _hour(form))


def _hour(form: dict[str, str]) -> int:
    return _whole_number(form, "hour", 0, 23, "Choose an hour from 00:00 to 23:00.")


def save_schedule(actor: Actor, form: dict[str, str]) -> ExportSchedule:
    """Check the form (ScheduleError naming the field, nothing saved), then save it and work out the next
    slot from now; audited with the names of the fields that changed. Saving the same rule again keeps
    the slot waiting (a slot missed while no worker ran still runs)."""
    require(actor, "clinic.export")
    rule = read_rule(form, Rule.of(current_schedule(actor)))
    # Two admins saving the first schedule at once make one row, not an IntegrityError.
    first = {"tenant_id": actor.tenant_id, **asdict(Rule()), "failure_reported": False}
    insert_unless_exists(ExportSchedule, first, ["tenant_id"])
    row = db.session.scalar(scoped(ExportSchedule, actor.tenant_id).with_for_update())
    changed = [name for name in FIELDS if getattr(row, name) != getattr(rule, name)]
    for name in FIELDS:
        setattr(row, name, getattr(rule, name))
    if changed or (row.next_run_at is None) != (rule.frequency == OFF):
        zone = db.session.get(Tenant, actor.tenant_id).timezone
        row.next_run_at = next_run_after(rule, zone, utcnow())
    if changed:
        row.updated_at, row.updated_by_user_id = utcnow(), actor.user_id
        record_event(actor, "tenant_export.schedule_changed", resource_type="tenant",
                     resource_id=actor.tenant_id, changed_fields=changed)  # fmt: skip
    db.session.commit()
    return row


# --- the periodic sweep ------------------------------------------------------------------------------------


def run_scheduled_exports() -> str:
    """Periodic (every 15 minutes): start the export of each clinic whose slot is due, once per slot, and
    tell the admins of each scheduled export that failed."""
    now = utcnow()
    due = db.session.execute(
        select(ExportSchedule.id, ExportSchedule.tenant_id, ExportSchedule.next_run_at)
        .where(ExportSchedule.next_run_at <= now)
        .order_by(ExportSchedule.next_run_at)
        .execution_options(**ALL_TENANTS)  # periodic, for every clinic
    ).all()
    db.session.commit()
    started = 0
    for schedule_id, tenant_id, slot in due:
        try:
            started += start_due_export(schedule_id, tenant_id, slot, now)
        except Exception:
            # One clinic's failure must not hold back the others; its job row (if any) says what happened.
            db.session.rollback()
            log.exception("scheduled export of clinic %s (slot %s) not started", tenant_id, slot)
    reported = report_failed_exports()
    return f"{started} scheduled exports started, {reported} failures reported"


def start_due_export(schedule_id: int, tenant_id: int, slot: datetime, now: datetime) -> bool:
    """Take the slot `slot` of a schedule and start its export; False when it is not due any more (another
    sweep took it, or an admin changed the schedule). The guarded UPDATE moves the slot on to the first
    one after `now`: slots missed while no worker ran start one export, not one each.

    The claim, its audit event and the export's job row commit together (`enqueue` with the job id named
    here): two sweeps at once start one export, and a sweep that dies leaves the slot due.
    """
    schedule = get_scoped(ExportSchedule, schedule_id, tenant_id)
    if schedule is None or schedule.next_run_at != slot:
        db.session.rollback()
        return False
    zone = db.session.get(Tenant, tenant_id).timezone
    following = next_run_after(Rule.of(schedule), zone, now)
    job_id = str(uuid.uuid4())
    taken = db.session.execute(
        update(ExportSchedule)
        .where(
            ExportSchedule.id == schedule_id,
            ExportSchedule.tenant_id == tenant_id,
            ExportSchedule.next_run_at == slot,
        )
        .values(next_run_at=following, last_run_at=slot, last_job_id=job_id, failure_reported=False)
        .returning(ExportSchedule.id)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        db.session.rollback()
        return False
    services.start_scheduled_export(tenant_id, schedule_id, job_id)
    return True


def report_failed_exports() -> int:
    """Email every active admin of each clinic whose last scheduled export failed (after its retries),
    once per export: a guarded UPDATE takes the report."""
    failed = db.session.execute(
        select(ExportSchedule.id, ExportSchedule.tenant_id, ExportSchedule.last_job_id)
        .join(Job, and_(Job.id == ExportSchedule.last_job_id, Job.tenant_id == ExportSchedule.tenant_id))
        .where(Job.status == FAILED, ExportSchedule.failure_reported.is_(False))
        .execution_options(**ALL_TENANTS)  # periodic, for every clinic
    ).all()
    db.session.commit()
    reported = 0
    for schedule_id, tenant_id, job_id in failed:
        taken = db.session.execute(
            update(ExportSchedule)
            .where(
                ExportSchedule.id == schedule_id,
                ExportSchedule.last_job_id == job_id,
                ExportSchedule.failure_reported.is_(False),
            )
            .values(failure_reported=True)
            .returning(ExportSchedule.id)
            .execution_options(synchronize_session=False)
        ).first()
        db.session.commit()
        if taken is not None:
            _mail_failure(schedule_id, tenant_id, job_id)
            reported += 1
    return reported


def _mail_failure(schedule_id: int, tenant_id: int, job_id: str) -> None:
    schedule = get_scoped(ExportSchedule, schedule_id, tenant_id)
    clinic = db.session.get(Tenant, tenant_id)
    url = f"{current_app.config['PUBLIC_URL']}/admin/export/{job_id}"
    for admin in services.clinic_admins(tenant_id):
        deliver(
            compose(
                admin.email, "clinic_export_failed", tenant_id=tenant_id, user=admin, clinic=clinic,
                schedule=schedule.describe, url=url,
            )
        )  # fmt: skip
