"""The clinical side of a patient's page: recent records, liver scores, allergies and immunizations, for the
roles that see clinical content (healthcrm/permissions.py, "clinical.read"); front desk gets none."""

from __future__ import annotations

from dataclasses import dataclass

from ..audit.services import Actor
from ..patients.models import Patient
from ..permissions import can
from . import allergies
from . import services as records
from .liver import liver_scores
from .models import Allergy, Immunization
from .scores import ScoreResult

RECENT_RECORDS = 10


@dataclass(frozen=True)
class ClinicalSummary:
    records: records.RecordPage  # the newest RECENT_RECORDS, with the total
    scores: list[ScoreResult]
    allergies: list[Allergy]
    immunizations: list[Immunization]


def clinical_summary(actor: Actor, patient: Patient) -> ClinicalSummary | None:
    """What the patient page shows of the clinical side, or None for a role that sees no clinical content
    (the page then shows demographics only). The record list is audited as a read."""
    if not can(actor, "clinical.read"):
        return None
    return ClinicalSummary(
        records=records.search_records(
            actor, records.RecordFilters(patient_id=patient.id), per_page=RECENT_RECORDS
        ),
        scores=liver_scores(patient),
        allergies=allergies.patient_allergies(actor, patient),
        immunizations=allergies.patient_immunizations(actor, patient),
    )
