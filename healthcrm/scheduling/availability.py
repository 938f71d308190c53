"""What can be booked and when: the clinic's appointment types, its closures and scheduling settings (admins),
and each provider's weekly hours and exceptions (admins for anyone, a provider for themself).

Every change is validated first and changes nothing when refused (a `SchedulingError` tied to the form field,
shown as 422 in place); every change is audited in the same transaction and committed once. Times of day are
wall-clock times in the clinic's zone (slots.py turns them into UTC per day, so DST days stay right).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, time
from itertools import pairwise

from sqlalchemy import delete, func

from ..accounts.models import User
from ..accounts.roles import ROLE_LABELS, STAFF_ROLES
from ..audit.services import Actor, record_event
from ..errors import NotAllowed, NotFound
from ..extensions import db
from ..permissions import can, require
from ..tenancy import get_scoped, scoped
from .booking import SchedulingError, settings_for
from .models import (
    EXCEPTION_KINDS,
    EXTRA_HOURS,
    MODES,
    TIME_OFF,
    VIDEO,
    AppointmentType,
    AvailabilityException,
    ClinicClosure,
    SchedulingSettings,
    WeeklyHours,
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# How many intervals one weekday's row of the hours form offers (a split day, an evening clinic, …).
INTERVALS_PER_DAY = 4
NAME_MAX_CHARS = 120
VIDEO_LINK_MAX_CHARS = 500
PREPARATION_MAX_CHARS = 2000
CLOSURE_REASON_MAX_CHARS = 200
EXCEPTION_NOTE_MAX_CHARS = 200
DURATION_MINUTES = (5, 480)
BUFFER_MINUTES = (0, 120)
NOTICE_MINUTES = (0, 60 * 24 * 30)
HORIZON_DAYS = (1, 365)
CUTOFF_MINUTES = (0, 60 * 24 * 30)
HOLD_MINUTES = (1, 60)
OFFER_MINUTES = (5, 60 * 24 * 2)
CLOSURE_MAX_DAYS = 366
SETTINGS_ACTION = "scheduling.settings"
# Who may pick up the staff task of a type booked by a patient without a coach.
POOL_ROLES = {role: ROLE_LABELS[role] for role in STAFF_ROLES}


# --- parsing form values ------------------------------------------------------------------------------------


def _text(values: dict, name: str, limit: int, label: str, *, required: bool = False) -> str | None:
    value = (values.get(name) or "").strip()
    if required and not value:
        raise SchedulingError(f"Enter the {label}.", name)
    if len(value) > limit:
        raise SchedulingError(f"Keep the {label} under {limit} characters.", name)
    return value or None


def _number(values: dict, name: str, bounds: tuple[int, int], label: str) -> int:
    raw = (values.get(name) or "").strip()
    low, high = bounds
    try:
        number = int(raw)
    except ValueError:
        raise SchedulingError(f"Enter the {label} as a whole number.", name) from None
    if not low <= number <= high:
        raise SchedulingError(f"The {label} must be between {low} and {high}.", name)
    return number


def _flag(values: dict, name: str) -> bool:
    return (values.get(name) or "") in ("1", "on", "true", "yes")


def parse_time(raw: str | None, field: str) -> time | None:
    """ "09:30" as a time; empty is None; anything else is refused."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return time.fromisoformat(raw).replace(second=0, microsecond=0)
    except ValueError:
        raise SchedulingError("Enter a time as HH:MM, e.g. 09:30.", field) from None


def parse_day(raw: str | None, field: str, label: str = "date") -> date:
    raw = (raw or "").strip()
    if not raw:
        raise SchedulingError(f"Enter the {label}.", field)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SchedulingError(f"Enter the {label} as YYYY-MM-DD.", field) from None


def _audit_settings(actor: Actor, resource_type: str, resource_id: int | None, changed: list[str]) -> None:
    record_event(
        actor, SETTINGS_ACTION, resource_type=resource_type, resource_id=resource_id, changed_fields=changed
    )


# --- appointment types --------------------------------------------------------------------------------------


def clinic_types(tenant_id: int, *, active_only: bool = False) -> list[AppointmentType]:
    """The clinic's appointment types, active first, by name."""
    statement = scoped(AppointmentType, tenant_id)
    if active_only:
        statement = statement.where(AppointmentType.active.is_(True))
    return list(db.session.scalars(statement.order_by(AppointmentType.active.desc(), AppointmentType.name)))


@dataclass(frozen=True)
class TypeInput:
    name: str
    duration_minutes: int
    mode: str
    video_link: str | None
    preparation: str | None
    buffer_before_minutes: int
    buffer_after_minutes: int
    patient_bookable: bool
    min_notice_minutes: int
    horizon_days: int
    reschedule_cutoff_minutes: int
    cancel_cutoff_minutes: int
    task_pool_role: str | None


def parse_type(values: dict) -> TypeInput:
    """The appointment-type form as a TypeInput; the first bad field raises SchedulingError."""
    name = _text(values, "name", NAME_MAX_CHARS, "name", required=True)
    duration = _number(values, "duration_minutes", DURATION_MINUTES, "duration (minutes)")
    mode = (values.get("mode") or "").strip()
    if mode not in MODES:
        raise SchedulingError("Choose in person or video.", "mode")
    video_link = _text(values, "video_link", VIDEO_LINK_MAX_CHARS, "video link")
    if mode == VIDEO and not video_link:
        raise SchedulingError("A video visit needs the video link patients join with.", "video_link")
    if video_link and not video_link.startswith("https://"):
        raise SchedulingError("The video link must start with https://.", "video_link")
    role = (values.get("task_pool_role") or "").strip() or None
    if role is not None and role not in POOL_ROLES:
        raise SchedulingError("Choose one of the listed roles, or none.", "task_pool_role")
    return TypeInput(
        name=name or "",
        duration_minutes=duration,
        mode=mode,
        video_link=video_link if mode == VIDEO else None,
        preparation=_text(values, "preparation", PREPARATION_MAX_CHARS, "preparation instructions"),
        buffer_before_minutes=_number(values, "buffer_before_minutes", BUFFER_MINUTES, "buffer before"),
        buffer_after_minutes=_number(values, "buffer_after_minutes", BUFFER_MINUTES, "buffer after"),
        patient_bookable=_flag(values, "patient_bookable"),
        min_notice_minutes=_number(values, "min_notice_minutes", NOTICE_MINUTES, "minimum notice (minutes)"),
        horizon_days=_number(values, "horizon_days", HORIZON_DAYS, "booking horizon (days)"),
        reschedule_cutoff_minutes=_number(
            values, "reschedule_cutoff_minutes", CUTOFF_MINUTES, "reschedule cut-off (minutes)"
        ),
        cancel_cutoff_minutes=_number(
            values, "cancel_cutoff_minutes", CUTOFF_MINUTES, "cancel cut-off (minutes)"
        ),
        task_pool_role=role,
    )


def save_type(actor: Actor, values: dict, type_id: int | None = None) -> AppointmentType:
    """Add an appointment type, or change the clinic's type `type_id` (audited with the changed fields)."""
    require(actor, "schedule.settings")
    row = None
    if type_id is not None:
        row = get_scoped(AppointmentType, type_id, actor.tenant_id)
        if row is None:
            raise NotFound("appointment type")
    data = parse_type(values)
    clash = db.session.scalar(
        scoped(AppointmentType, actor.tenant_id).where(
            func.lower(AppointmentType.name) == data.name.lower(),
            AppointmentType.id != (row.id if row else -1),
        )
    )
    if clash is not None:
        raise SchedulingError("The clinic already has a type of that name.", "name")
    if row is None:
        row = AppointmentType(tenant_id=actor.tenant_id, active=True)
        db.session.add(row)
    changed = [name for name, value in data.__dict__.items() if getattr(row, name, None) != value]
    for name, value in data.__dict__.items():
        setattr(row, name, value)
    db.session.flush()
    _audit_settings(actor, "appointment_type", row.id, changed)
    db.session.commit()
    return row


def set_type_active(actor: Actor, type_id: int, active: bool) -> AppointmentType:
    """Deactivate a type (it can no longer be booked; its appointments stay) or bring it back."""
    require(actor, "schedule.settings")
    row = get_scoped(AppointmentType, type_id, actor.tenant_id)
    if row is None:
        raise NotFound("appointment type")
    if row.active != active:
        row.active = active
        _audit_settings(actor, "appointment_type", row.id, ["active"])
        db.session.commit()
    return row


# --- closures and the clinic's settings --------------------------------------------------------------------


def clinic_closures(tenant_id: int, since: date | None = None) -> list[ClinicClosure]:
    """The clinic's closures (ending on or after `since`), in date order."""
    statement = scoped(ClinicClosure, tenant_id)
    if since is not None:
        statement = statement.where(ClinicClosure.last_day >= since)
    return list(db.session.scalars(statement.order_by(ClinicClosure.first_day, ClinicClosure.id)))


def add_closure(actor: Actor, values: dict) -> ClinicClosure:
    """Close the whole clinic from `first_day` to `last_day` (a holiday), with a reason."""
    require(actor, "schedule.settings")
    first_day = parse_day(values.get("first_day"), "first_day", "first day")
    last_raw = (values.get("last_day") or "").strip()
    last_day = parse_day(last_raw, "last_day", "last day") if last_raw else first_day
    if last_day < first_day:
        raise SchedulingError("The last day cannot be before the first day.", "last_day")
    if (last_day - first_day).days >= CLOSURE_MAX_DAYS:
        raise SchedulingError(f"A closure can last at most {CLOSURE_MAX_DAYS} days.", "last_day")
    reason = _text(values, "reason", CLOSURE_REASON_MAX_CHARS, "reason", required=True)
    row = ClinicClosure(tenant_id=actor.tenant_id, first_day=first_day, last_day=last_day, reason=reason)
    db.session.add(row)
    db.session.flush()
    _audit_settings(actor, "clinic_closure", row.id, ["first_day", "last_day", "reason"])
    db.session.commit()
    return row


def remove_closure(actor: Actor, closure_id: int) -> None:
    require(actor, "schedule.settings")
    row = get_scoped(ClinicClosure, closure_id, actor.tenant_id)
    if row is None:
        raise NotFound("closure")
    db.session.delete(row)
    _audit_settings(actor, "clinic_closure", closure_id, ["deleted"])
    db.session.commit()


def save_settings(actor: Actor, values: dict) -> SchedulingSettings:
    """The clinic's 2-hour reminder, hold minutes and waitlist offer minutes."""
    require(actor, "schedule.settings")
    reminder_2h = _flag(values, "reminder_2h")
    hold_minutes = _number(values, "hold_minutes", HOLD_MINUTES, "hold time (minutes)")
    offer_minutes = _number(values, "offer_minutes", OFFER_MINUTES, "waitlist offer time (minutes)")
    row = db.session.scalar(scoped(SchedulingSettings, actor.tenant_id))
    if row is None:
        row = settings_for(actor.tenant_id)
        db.session.add(row)
        changed = ["reminder_2h", "hold_minutes", "offer_minutes"]
    else:
        changed = [
            name
            for name, value in (
                ("reminder_2h", reminder_2h),
                ("hold_minutes", hold_minutes),
                ("offer_minutes", offer_minutes),
            )
            if getattr(row, name) != value
        ]
    row.reminder_2h, row.hold_minutes, row.offer_minutes = reminder_2h, hold_minutes, offer_minutes
    db.session.flush()
    _audit_settings(actor, "scheduling_settings", row.id, changed)
    db.session.commit()
    return row


# --- providers' hours ---------------------------------------------------------------------------------------


def clinic_staff(tenant_id: int) -> list[User]:
    """The clinic's active staff (anyone may have hours), by name."""
    return list(
        db.session.scalars(
            scoped(User, tenant_id)
            .where(User.active.is_(True), User.role.in_(STAFF_ROLES))
            .order_by(User.full_name, User.id)
        )
    )


def may_edit_hours(actor: Actor, provider_id: int | None) -> bool:
    """Admins edit anyone's hours; a provider with schedule.own_hours edits their own."""
    if can(actor, "schedule.settings"):
        return True
    return can(actor, "schedule.own_hours") and provider_id == actor.user_id


def _provider(actor: Actor, provider_id: int | None) -> User:
    """The clinic's staff member whose hours `actor` may edit (404 for another clinic's, 403 otherwise)."""
    provider = get_scoped(User, provider_id, actor.tenant_id) if provider_id else None
    if provider is None or provider.role not in STAFF_ROLES:
        raise NotFound("provider")
    if not may_edit_hours(actor, provider.id):
        raise NotAllowed("schedule.settings", actor.role)
    return provider


def provider_for_hours(actor: Actor, provider_id: int | None) -> User:
    """The provider whose hours page `actor` opens (themself when `provider_id` is None)."""
    return _provider(actor, provider_id or actor.user_id)


def weekly_hours(tenant_id: int, provider_id: int) -> dict[int, list[tuple[time, time]]]:
    """{weekday: [(starts, ends), …]} of one provider, in time order."""
    week: dict[int, list[tuple[time, time]]] = defaultdict(list)
    for row in db.session.scalars(
        scoped(WeeklyHours, tenant_id)
        .where(WeeklyHours.provider_id == provider_id)
        .order_by(WeeklyHours.weekday, WeeklyHours.starts)
    ):
        week[row.weekday].append((row.starts, row.ends))
    return dict(week)


def _overlap_message(label: str, intervals: list[tuple[time, time]]) -> str | None:
    ordered = sorted(intervals)
    for (a_start, a_end), (b_start, b_end) in pairwise(ordered):
        if b_start < a_end:
            return (
                f"{label}: {a_start:%H:%M}–{a_end:%H:%M} and {b_start:%H:%M}–{b_end:%H:%M} overlap. "
                "Join them into one interval or change one."
            )
    return None


def parse_week(values: dict) -> dict[int, list[tuple[time, time]]]:
    """The hours form (`starts_<day>_<n>`, `ends_<day>_<n>`) as {weekday: intervals}; empty pairs are
    skipped, half-filled, reversed or overlapping ones refused."""
    week: dict[int, list[tuple[time, time]]] = {}
    for day in range(7):
        intervals = []
        for n in range(INTERVALS_PER_DAY):
            field = f"starts_{day}_{n}"
            starts = parse_time(values.get(field), field)
            ends = parse_time(values.get(f"ends_{day}_{n}"), f"ends_{day}_{n}")
            if starts is None and ends is None:
                continue
            if starts is None or ends is None:
                raise SchedulingError(f"{WEEKDAYS[day]}: give both times of an interval.", field)
            if ends <= starts:
                raise SchedulingError(f"{WEEKDAYS[day]}: an interval must end after it starts.", field)
            intervals.append((starts, ends))
        message = _overlap_message(WEEKDAYS[day], intervals)
        if message:
            raise SchedulingError(message, f"starts_{day}_0")
        if intervals:
            week[day] = sorted(intervals)
    return week


def save_weekly_hours(actor: Actor, provider_id: int | None, values: dict) -> dict[int, list]:
    """Replace a provider's regular week with the form's intervals."""
    provider = _provider(actor, provider_id)
    week = parse_week(values)
    before = weekly_hours(actor.tenant_id, provider.id)
    db.session.execute(
        delete(WeeklyHours).where(
            WeeklyHours.tenant_id == actor.tenant_id, WeeklyHours.provider_id == provider.id
        )
    )
    for day, intervals in week.items():
        for starts, ends in intervals:
            db.session.add(
                WeeklyHours(
                    tenant_id=actor.tenant_id, provider_id=provider.id, weekday=day, starts=starts, ends=ends
                )
            )
    changed = [WEEKDAYS[day].lower() for day in range(7) if before.get(day, []) != week.get(day, [])]
    record_event(
        actor,
        "availability.weekly_hours",
        resource_type="user",
        resource_id=provider.id,
        changed_fields=changed,
    )
    db.session.commit()
    return week


def provider_exceptions(tenant_id: int, provider_id: int, since: date) -> list[AvailabilityException]:
    """A provider's exceptions from `since` on, by date."""
    return list(
        db.session.scalars(
            scoped(AvailabilityException, tenant_id)
            .where(AvailabilityException.provider_id == provider_id, AvailabilityException.day >= since)
            .order_by(AvailabilityException.day, AvailabilityException.starts)
        )
    )


def add_exception(actor: Actor, provider_id: int | None, values: dict) -> AvailabilityException:
    """Time off on a date (all day without times, or some hours), or extra hours on a date."""
    provider = _provider(actor, provider_id)
    day = parse_day(values.get("day"), "day")
    kind = (values.get("kind") or "").strip()
    if kind not in EXCEPTION_KINDS:
        raise SchedulingError("Choose time off or extra hours.", "kind")
    starts = parse_time(values.get("starts"), "starts")
    ends = parse_time(values.get("ends"), "ends")
    if (starts is None) != (ends is None):
        raise SchedulingError("Give both times, or neither for a whole day off.", "starts")
    if starts is None and kind == EXTRA_HOURS:
        raise SchedulingError("Extra hours need a start and an end time.", "starts")
    if starts is not None and ends is not None and ends <= starts:
        raise SchedulingError("The end time must be after the start time.", "ends")
    note = _text(values, "note", EXCEPTION_NOTE_MAX_CHARS, "note")
    same_day = db.session.scalars(
        scoped(AvailabilityException, actor.tenant_id).where(
            AvailabilityException.provider_id == provider.id,
            AvailabilityException.day == day,
            AvailabilityException.kind == kind,
        )
    ).all()
    label = f"{EXCEPTION_KINDS[kind]} on {day:%d %b %Y}"
    if kind == TIME_OFF and any(e.starts is None for e in same_day):
        raise SchedulingError(f"{label}: the whole day is off already.", "day")
    if starts is not None and ends is not None:
        message = _overlap_message(
            label, [(e.starts, e.ends) for e in same_day if e.starts and e.ends] + [(starts, ends)]
        )
        if message:
            raise SchedulingError(message, "starts")
    row = AvailabilityException(
        tenant_id=actor.tenant_id,
        provider_id=provider.id,
        day=day,
        kind=kind,
        starts=starts,
        ends=ends,
        note=note,
    )
    db.session.add(row)
    db.session.flush()
    record_event(
        actor,
        "availability.exception_add",
        resource_type="availability_exception",
        resource_id=row.id,
        changed_fields=["day", "kind", "starts", "ends", "note"],
    )
    db.session.commit()
    return row


def remove_exception(actor: Actor, exception_id: int) -> int:
    """Delete an exception; returns its provider's id."""
    row = get_scoped(AvailabilityException, exception_id, actor.tenant_id)
    if row is None:
        raise NotFound("exception")
    provider = _provider(actor, row.provider_id)
    db.session.delete(row)
    record_event(
        actor,
        "availability.exception_remove",
        resource_type="availability_exception",
        resource_id=exception_id,
        changed_fields=["deleted"],
    )
    db.session.commit()
    return provider.id


def week_form_values(week: dict[int, list[tuple[time, time]]]) -> dict[str, str]:
    """The hours form's field values for a week (what the page shows before any post)."""
    values: dict[str, str] = {}
    for day, intervals in week.items():
        for n, (starts, ends) in enumerate(intervals[:INTERVALS_PER_DAY]):
            values[f"starts_{day}_{n}"] = f"{starts:%H:%M}"
            values[f"ends_{day}_{n}"] = f"{ends:%H:%M}"
    return values
