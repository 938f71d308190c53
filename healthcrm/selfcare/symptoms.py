"""The symptom log: what the patient felt, how bad (0–10), notes, when (typed in the clinic's zone, never in
the future); read back as a table and a chart per symptom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..audit.services import Actor, record_event
from ..clock import local_to_utc, to_clinic_time, utc_to_local, utcnow
from ..extensions import db
from ..tenancy import scoped
from .clinic import SelfCareError, clinic_zone, patient_for
from .models import SymptomEntry

SYMPTOMS = {
    "pain": "Pain",
    "fatigue": "Tiredness",
    "nausea": "Nausea",
    "headache": "Headache",
    "breathless": "Shortness of breath",
    "dizziness": "Dizziness",
    "itching": "Itching",
    "swelling": "Swelling",
    "sleep": "Poor sleep",
    "mood": "Low mood",
    "other": "Something else",
}
OTHER = "other"
SEVERITY_MIN, SEVERITY_MAX = 0, 10
NOTES_MAX_CHARS = 1000
OTHER_NAME_MAX_CHARS = 80
# A phone's clock a little ahead of the server's is not "the future".
FUTURE_SLACK = timedelta(minutes=5)
OLDEST = timedelta(days=366)
SHOWN_DAYS = 90  # the chart and table cover the last 90 days
TIME_FORMAT = "%Y-%m-%dT%H:%M"


def label_of(entry: SymptomEntry) -> str:
    if entry.symptom == OTHER:
        return entry.other_name or SYMPTOMS[OTHER]
    return SYMPTOMS.get(entry.symptom, entry.symptom)


@dataclass
class SymptomLog:
    entries: list[SymptomEntry]  # newest first
    series: list[dict]  # for static/js/lab-chart.js: one "test" per symptom
    zone: str | None

    def label(self, entry: SymptomEntry) -> str:
        return label_of(entry)


def default_time(tenant_id: int) -> str:
    """Now on the clinic's wall clock, for the form's time field."""
    return utc_to_local(utcnow(), clinic_zone(tenant_id)).strftime(TIME_FORMAT)


def _series(entries: list[SymptomEntry]) -> list[dict]:
    by_label: dict[str, list[SymptomEntry]] = {}
    for entry in sorted(entries, key=lambda e: (e.occurred_at, e.id)):
        by_label.setdefault(label_of(entry), []).append(entry)
    series = []
    for index, (label, items) in enumerate(sorted(by_label.items())):
        series.append(
            {
                "canvas": f"symptom-{index}",
                "name": label,
                "unit": "severity 0–10",
                "points": [
                    {
                        "t": int(to_clinic_time(e.occurred_at, "UTC").timestamp() * 1000),
                        "y": e.severity,
                        "flag": None,
                        "low": None,
                        "high": None,
                    }
                    for e in items
                ],
            }
        )
    return series


def symptom_log(actor: Actor, patient_id: int) -> SymptomLog:
    """The patient's entries of the last SHOWN_DAYS days, audited."""
    patient = patient_for(actor, patient_id)
    since = utcnow() - timedelta(days=SHOWN_DAYS)
    entries = list(
        db.session.scalars(
            scoped(SymptomEntry, actor.tenant_id)
            .where(SymptomEntry.patient_id == patient.id, SymptomEntry.occurred_at >= since)
            .order_by(SymptomEntry.occurred_at.desc(), SymptomEntry.id.desc())
        )
    )
    record_event(
        actor, "symptom.list", resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    return SymptomLog(entries, _series(entries), clinic_zone(actor.tenant_id))


def _parse(tenant_id: int, symptom, other_name, severity, notes, occurred_at) -> dict:
    errors: list[SelfCareError] = []
    symptom = (symptom or "").strip()
    if symptom not in SYMPTOMS:
        errors.append(SelfCareError("Choose a symptom from the list.", "symptom"))
    other_name = (other_name or "").strip() or None
    if symptom == OTHER and not other_name:
        errors.append(SelfCareError("Say what the symptom is.", "other_name"))
    elif other_name and len(other_name) > OTHER_NAME_MAX_CHARS:
        errors.append(SelfCareError(f"Keep the name under {OTHER_NAME_MAX_CHARS} characters.", "other_name"))
    try:
        level = int(str(severity).strip())
    except (TypeError, ValueError):
        level = None
    if level is None or not SEVERITY_MIN <= level <= SEVERITY_MAX:
        errors.append(
            SelfCareError("Choose how bad it is, from 0 (not at all) to 10 (the worst).", "severity")
        )
    notes = (notes or "").strip() or None
    if notes and len(notes) > NOTES_MAX_CHARS:
        errors.append(SelfCareError(f"Keep the notes under {NOTES_MAX_CHARS} characters.", "notes"))
    zone = clinic_zone(tenant_id)
    when = None
    if not (occurred_at or "").strip():
        when = utcnow()
    else:
        try:
            when = local_to_utc(datetime.strptime(occurred_at.strip(), TIME_FORMAT), zone)  # noqa: DTZ007 - zoned here
        except ValueError:
            errors.append(SelfCareError("Give the date and time, like 2026-12-02 08:30.", "occurred_at"))
    now = utcnow()
    if when is not None and when > now + FUTURE_SLACK:
        errors.append(SelfCareError("The time cannot be in the future.", "occurred_at"))
    elif when is not None and when < now - OLDEST:
        errors.append(SelfCareError("The time must be within the last year.", "occurred_at"))
    if errors:
        raise SymptomErrors(errors)
    return {
        "symptom": symptom,
        "other_name": other_name if symptom == OTHER else None,
        "severity": level,
        "notes": notes,
        "occurred_at": min(when, now),
    }


class SymptomErrors(SelfCareError):
    """Every fault of one entry at once, each at its field."""

    def __init__(self, errors: list[SelfCareError]):
        super().__init__(errors[0].message, errors[0].field)
        self.errors = errors

    def by_field(self) -> dict[str, str]:
        return {e.field or "": e.message for e in self.errors}


def log_symptom(
    actor: Actor,
    patient_id: int,
    *,
    symptom: str | None,
    severity: str | int | None,
    notes: str | None = None,
    occurred_at: str | None = None,
    other_name: str | None = None,
) -> SymptomEntry:
    """Add an entry to the log (raises SymptomErrors with every fault, nothing saved)."""
    patient = patient_for(actor, patient_id)
    values = _parse(actor.tenant_id, symptom, other_name, severity, notes, occurred_at)
    entry = SymptomEntry(
        tenant_id=actor.tenant_id, patient_id=patient.id, recorded_by_id=actor.user_id, **values
    )
    db.session.add(entry)
    db.session.flush()
    record_event(
        actor, "symptom.create", resource_type="symptom_entry", resource_id=entry.id, patient_id=patient.id
    )
    db.session.commit()
    return entry
