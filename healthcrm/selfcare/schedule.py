"""Which prescriptions are current, and when their doses are due.

A prescription is CURRENT when
1. it is on one of the patient's FINALIZED records (a draft may still change or be deleted);
2. it has not run out: its `duration` ("7 days", "2 weeks", "3 months", "10 d") counted from the visit's
   clinic day reaches today or later; a duration we cannot read ("until review", empty) means ongoing;
3. it is the latest of its drug: a newer finalized prescription of the same drug (names compared without
   case or surrounding spaces) replaces it, whatever its dose.

Its dose SCHEDULE is `Prescription.schedule` (times of day, set by staff) or, when that is empty, derived from
the frequency for the common wordings (DERIVED_SCHEDULES); a prescription with neither ("as needed") has no
scheduled doses and is not part of the adherence marks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from ..clock import to_clinic_time
from ..extensions import db
from ..records.models import FINALIZED, MedicalRecord, Prescription

# Frequency wordings (lower-cased, spaces squeezed) and the times of day they mean.
ONCE = ("08:00",)
TWICE = ("08:00", "20:00")
THREE_TIMES = ("08:00", "14:00", "20:00")
FOUR_TIMES = ("08:00", "12:00", "16:00", "20:00")
BEDTIME = ("21:00",)
DERIVED_SCHEDULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("once daily", "once a day", "daily", "od", "qd", "every morning", "1x daily"), ONCE),
    **dict.fromkeys(("twice daily", "twice a day", "bid", "b.i.d.", "2x daily", "every 12 hours"), TWICE),
    **dict.fromkeys(
        ("three times daily", "three times a day", "tid", "t.i.d.", "3x daily", "every 8 hours"), THREE_TIMES
    ),
    **dict.fromkeys(
        ("four times daily", "four times a day", "qid", "q.i.d.", "4x daily", "every 6 hours"), FOUR_TIMES
    ),
    **dict.fromkeys(("at bedtime", "nightly", "every night", "qhs", "once nightly"), BEDTIME),
}
MAX_DOSES_PER_DAY = 8
SLOT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
DURATION = re.compile(
    r"^\s*(\d{1,3})\s*(d|day|days|w|wk|wks|week|weeks|m|mo|month|months)\s*$", re.IGNORECASE
)
DAYS_PER = {"d": 1, "w": 7, "m": 30}


@dataclass(frozen=True)
class CurrentPrescription:
    prescription: Prescription
    starts: date  # the clinic day of the visit
    ends: date | None  # the last day, when the duration says; None: ongoing
    schedule: tuple[str, ...]  # the dose times ("08:00", …), empty when none is known

    @property
    def id(self) -> int:
        return self.prescription.id


def duration_days(duration: str | None) -> int | None:
    """The number of days a duration names ("2 weeks" → 14), or None when it is not a plain length."""
    match = DURATION.match(duration or "")
    if not match:
        return None
    return int(match.group(1)) * DAYS_PER[match.group(2)[0].lower()]


def derived_schedule(frequency: str | None) -> tuple[str, ...]:
    """The dose times for a common frequency wording, else none."""
    key = " ".join((frequency or "").lower().split())
    if "as needed" in key or "prn" in key.split():
        return ()
    if key in DERIVED_SCHEDULES:
        return DERIVED_SCHEDULES[key]
    # "twice daily with meals": a known wording followed by a note.
    for wording in sorted(DERIVED_SCHEDULES, key=len, reverse=True):
        if key.startswith(wording + " "):
            return DERIVED_SCHEDULES[wording]
    return ()


def schedule_of(prescription: Prescription) -> tuple[str, ...]:
    if prescription.schedule:
        return tuple(sorted(prescription.schedule))
    return derived_schedule(prescription.frequency)


def parse_slots(text_value: str) -> list[str]:
    """Times typed by staff ("8:00, 20:00") as sorted "HH:MM" strings; raises ValueError naming a bad one."""
    slots: set[str] = set()
    for part in re.split(r"[,\s;]+", text_value.strip()):
        if not part:
            continue
        match = SLOT.match(part)
        if not match:
            raise ValueError(f"“{part}” is not a time of day like 08:00.")
        slots.add(f"{int(match.group(1)):02d}:{match.group(2)}")
    if len(slots) > MAX_DOSES_PER_DAY:
        raise ValueError(f"At most {MAX_DOSES_PER_DAY} doses a day.")
    return sorted(slots)


def _finalized_prescriptions(tenant_id: int, patient_id: int) -> list[tuple[Prescription, datetime]]:
    rows = db.session.execute(
        select(Prescription, MedicalRecord.visit_at)
        .join(MedicalRecord, MedicalRecord.id == Prescription.record_id)
        .where(
            Prescription.tenant_id == tenant_id,
            MedicalRecord.tenant_id == tenant_id,
            MedicalRecord.patient_id == patient_id,
            MedicalRecord.status == FINALIZED,
        )
        .order_by(MedicalRecord.visit_at.desc(), Prescription.id.desc())
    ).all()
    return [(row[0], row[1]) for row in rows]


def current_prescriptions(
    tenant_id: int, patient_id: int, zone: str | None, today: date
) -> list[CurrentPrescription]:
    """The patient's current prescriptions (see the module's docstring), newest visit first."""
    seen_drugs: set[str] = set()
    current: list[CurrentPrescription] = []
    for prescription, visit_at in _finalized_prescriptions(tenant_id, patient_id):
        drug = " ".join(prescription.drug.lower().split())
        if drug in seen_drugs:
            continue  # an older prescription of a drug prescribed again later
        seen_drugs.add(drug)
        starts = to_clinic_time(visit_at, zone).date()
        days = duration_days(prescription.duration)
        ends = starts + timedelta(days=days - 1) if days else None
        if ends is not None and ends < today:
            continue
        current.append(CurrentPrescription(prescription, starts, ends, schedule_of(prescription)))
    return current


def find_current(
    tenant_id: int, patient_id: int, prescription_id: int, zone: str | None, today: date
) -> CurrentPrescription | None:
    return next(
        (c for c in current_prescriptions(tenant_id, patient_id, zone, today) if c.id == prescription_id),
        None,
    )


def prescription_of_patient(tenant_id: int, patient_id: int, prescription_id: int) -> Prescription | None:
    """The prescription if it is on one of this patient's records (any status), else None."""
    return db.session.scalar(
        select(Prescription)
        .join(MedicalRecord, MedicalRecord.id == Prescription.record_id)
        .where(
            Prescription.id == prescription_id,
            Prescription.tenant_id == tenant_id,
            MedicalRecord.tenant_id == tenant_id,
            MedicalRecord.patient_id == patient_id,
        )
    )
