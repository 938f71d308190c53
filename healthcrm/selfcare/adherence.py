"""Medication adherence: each scheduled dose of a current prescription is marked taken or missed by the
patient, once (a unique key on prescription, day and time: two marks at once make one row); a weekly view;
the percentage for staff.

The percentage counts the doses that were due in the last ADHERENCE_DAYS clinic days (today's only once
their time has passed): taken ÷ due, an unmarked dose counting as not taken (it is shown apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from ..audit.services import Actor, record_event
from ..clock import clinic_now, utcnow
from ..counters import insert_unless_exists
from ..errors import NotFound
from ..extensions import db
from ..permissions import require
from ..tenancy import scoped
from .clinic import SelfCareError, clinic_zone, patient_for
from .models import DOSE_STATUSES, DoseMark
from .schedule import CurrentPrescription, current_prescriptions, parse_slots, prescription_of_patient

ADHERENCE_DAYS = 14
MARK_BACK_DAYS = 7  # a dose can be marked up to a week late, never ahead of its day
WEEK_DAYS = 7

# The states of a cell of the weekly view.
NOT_SCHEDULED = "none"  # before the prescription started or after it ended
UPCOMING = "upcoming"  # a later day
OPEN = "open"  # can be marked now
TOO_LATE = "late"  # older than MARK_BACK_DAYS and unmarked


@dataclass
class DoseCell:
    prescription_id: int
    day: date
    slot: str
    state: str  # taken, missed, or one of the states above
    mark: DoseMark | None = None

    @property
    def key(self) -> str:
        return f"dose-{self.prescription_id}-{self.day.isoformat()}-{self.slot.replace(':', '')}"

    @property
    def label(self) -> str:
        return DOSE_STATUSES.get(self.state, "")


@dataclass
class DoseRow:
    current: CurrentPrescription
    slot: str
    cells: list[DoseCell] = field(default_factory=list)


@dataclass
class Adherence:
    due: int
    taken: int
    missed: int
    days: int = ADHERENCE_DAYS

    @property
    def unmarked(self) -> int:
        return self.due - self.taken - self.missed

    @property
    def percent(self) -> int | None:
        return round(100 * self.taken / self.due) if self.due else None


@dataclass
class WeekView:
    days: list[date]
    rows: list[DoseRow]
    today: date
    previous: date
    following: date | None
    adherence: Adherence
    unscheduled: list[CurrentPrescription]  # current prescriptions without a schedule ("as needed")


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _marks(tenant_id: int, patient_id: int, first: date, last: date) -> dict[tuple[int, date, str], DoseMark]:
    rows = db.session.scalars(
        scoped(DoseMark, tenant_id).where(
            DoseMark.patient_id == patient_id, DoseMark.dose_day >= first, DoseMark.dose_day <= last
        )
    )
    return {(m.prescription_id, m.dose_day, m.slot): m for m in rows}


def _scheduled_on(current: CurrentPrescription, day: date) -> bool:
    return current.starts <= day and (current.ends is None or day <= current.ends)


def _cell(current: CurrentPrescription, day: date, slot: str, today: date, mark: DoseMark | None) -> DoseCell:
    pid = current.id
    if mark is not None:
        return DoseCell(pid, day, slot, mark.status, mark)
    if not _scheduled_on(current, day):
        return DoseCell(pid, day, slot, NOT_SCHEDULED)
    if day > today:
        return DoseCell(pid, day, slot, UPCOMING)
    if day < today - timedelta(days=MARK_BACK_DAYS):
        return DoseCell(pid, day, slot, TOO_LATE)
    return DoseCell(pid, day, slot, OPEN)


def compute_adherence(
    tenant_id: int, patient_id: int, currents: list[CurrentPrescription] | None = None
) -> Adherence:
    """Taken, missed and due doses of the last ADHERENCE_DAYS days (one query for the marks)."""
    zone = clinic_zone(tenant_id)
    now = clinic_now(zone)
    today = now.date()
    if currents is None:
        currents = current_prescriptions(tenant_id, patient_id, zone, today)
    first = today - timedelta(days=ADHERENCE_DAYS - 1)
    marks = _marks(tenant_id, patient_id, first, today)
    due = taken = missed = 0
    for current in currents:
        for offset in range(ADHERENCE_DAYS):
            day = first + timedelta(days=offset)
            if not _scheduled_on(current, day):
                continue
            for slot in current.schedule:
                mark = marks.get((current.id, day, slot))
                if mark is None and day == today and slot > now.strftime("%H:%M"):
                    continue  # later today: not due yet
                due += 1
                if mark is not None:
                    taken += mark.status == "taken"
                    missed += mark.status == "missed"
    return Adherence(due=due, taken=taken, missed=missed)


def week_view(actor: Actor, patient_id: int, week_of: date | None = None) -> WeekView:
    """Seven days (Monday to Sunday) × each scheduled dose of the current prescriptions, audited."""
    patient = patient_for(actor, patient_id)
    zone = clinic_zone(actor.tenant_id)
    today = clinic_now(zone).date()
    start = _week_start(min(week_of or today, today))
    days = [start + timedelta(days=i) for i in range(WEEK_DAYS)]
    currents = current_prescriptions(actor.tenant_id, patient.id, zone, today)
    marks = _marks(actor.tenant_id, patient.id, days[0], days[-1])
    rows = []
    for current in currents:
        for slot in current.schedule:
            row = DoseRow(current, slot)
            row.cells = [_cell(current, day, slot, today, marks.get((current.id, day, slot))) for day in days]
            rows.append(row)
    record_event(actor, "dose.list", resource_type="patient", resource_id=patient.id, patient_id=patient.id)
    adherence = compute_adherence(actor.tenant_id, patient.id, currents)
    db.session.commit()
    following = start + timedelta(days=WEEK_DAYS)
    return WeekView(
        days=days,
        rows=rows,
        today=today,
        previous=start - timedelta(days=WEEK_DAYS),
        following=following if following <= today else None,
        adherence=adherence,
        unscheduled=[c for c in currents if not c.schedule],
    )


@dataclass
class MarkResult:
    cell: DoseCell
    current: CurrentPrescription
    already: bool  # the dose had a mark before (this one changed nothing)


def mark_dose(
    actor: Actor,
    patient_id: int,
    prescription_id: int | None,
    day: str | None,
    slot: str | None,
    status: str | None,
) -> MarkResult:
    """Mark one scheduled dose taken or missed. Another patient's prescription is NotFound; a dose that is
    not scheduled, not yet due or too old is a SelfCareError; a dose marked before stays as it was."""
    patient = patient_for(actor, patient_id)
    tenant_id = actor.tenant_id
    if prescription_id is None or prescription_of_patient(tenant_id, patient.id, prescription_id) is None:
        raise NotFound("prescription")
    zone = clinic_zone(tenant_id)
    today = clinic_now(zone).date()
    current = next(
        (c for c in current_prescriptions(tenant_id, patient.id, zone, today) if c.id == prescription_id),
        None,
    )
    if current is None or not current.schedule:
        raise SelfCareError("This medicine has no doses to mark.", "prescription_id")
    if status not in DOSE_STATUSES:
        raise SelfCareError("Choose taken or missed.", "status")
    try:
        dose_day = date.fromisoformat(day or "")
    except ValueError:
        raise SelfCareError("That day is not a date.", "day") from None
    if slot not in current.schedule or not _scheduled_on(current, dose_day):
        raise SelfCareError("There is no dose of this medicine at that time.", "slot")
    if dose_day > today:
        raise SelfCareError("A dose can be marked on its day, not before.", "day")
    if dose_day < today - timedelta(days=MARK_BACK_DAYS):
        raise SelfCareError(f"Doses older than {MARK_BACK_DAYS} days can no longer be marked.", "day")
    inserted = insert_unless_exists(
        DoseMark,
        {
            "tenant_id": tenant_id,
            "patient_id": patient.id,
            "prescription_id": prescription_id,
            "dose_day": dose_day,
            "slot": slot,
            "status": status,
            "marked_by_id": actor.user_id,
            "marked_at": utcnow(),
        },
        ["prescription_id", "dose_day", "slot"],
    )
    mark = db.session.scalar(
        scoped(DoseMark, tenant_id).where(
            DoseMark.prescription_id == prescription_id, DoseMark.dose_day == dose_day, DoseMark.slot == slot
        )
    )
    if inserted:
        record_event(
            actor, "dose.mark", resource_type="dose_mark", resource_id=mark.id, patient_id=patient.id
        )
    db.session.commit()
    return MarkResult(
        DoseCell(prescription_id, dose_day, slot, mark.status, mark), current, already=not inserted
    )


def set_schedule(actor: Actor, patient_id: int, prescription_id: int, times: str | None):
    """Staff set a prescription's dose times ("08:00, 20:00"); empty goes back to the frequency's."""
    require(actor, "record.write")
    patient = patient_for(actor, patient_id, "record.write")
    prescription = prescription_of_patient(actor.tenant_id, patient.id, prescription_id)
    if prescription is None:
        raise NotFound("prescription")
    try:
        slots = parse_slots(times or "")
    except ValueError as error:
        raise SelfCareError(str(error), "times") from None
    prescription.schedule = slots or None
    record_event(
        actor,
        "prescription.schedule",
        resource_type="prescription",
        resource_id=prescription.id,
        patient_id=patient.id,
        changed_fields=["schedule"],
    )
    db.session.commit()
    return prescription
