"""The portal's home page: the patient's care stage in plain words, what needs them now (every registered
attention source, portal/feed.py), their recent activity (the newest timeline items) and their coach."""

from __future__ import annotations

from dataclasses import dataclass

from ..audit.services import Actor, record_event
from ..errors import NotFound
from ..extensions import db
from ..patients.models import CARE_STAGES, Patient
from ..tenancy import get_scoped
from . import feed
from .timeline import check_own_patient, chosen_kinds, read_items

RECENT_ITEMS = 5
# The home page's shortcuts: (endpoints, label), the first endpoint that exists is linked, none: not shown.
# Pages other areas add appear here once their endpoint is registered.
QUICK_ACTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("portal_messages.new", "portal_messages.index"), "Send a message to your care team"),
    (("portal_appointments.book",), "Book an appointment"),
    (("portal_selfcare.refill_new", "portal_selfcare.refills"), "Request a refill"),
    (("portal_records.labs",), "See your results"),
    (("portal_selfcare.symptoms",), "Log a symptom"),
    (("portal_selfcare.doses",), "Mark today's doses"),
    (("portal_documents.new", "portal_documents.index"), "Upload a document"),
    (("sharing.portal_create",), "Share my records"),
    (("sharing.portal_index",), "Your shared records"),
    (("portal_profile.index",), "Update your details"),
    (("accounts.security",), "Password, two-step sign-in and your devices"),
)

# What each care stage means for the patient, in their words (patients/models.py CARE_STAGES).
CARE_STAGE_MEANINGS = {
    "new": "You are new to the clinic. Your care team is getting to know you and will be in touch about "
    "your first steps.",
    "onboarding": "Your care team is setting up your care with you: first visits, tests and a plan you "
    "agree on together.",
    "active": "You are in active care: your care team sees you regularly and follows your plan with you.",
    "maintenance": "Your health is steady. Your care team checks in from time to time to help you keep "
    "it that way.",
    "discharged": "Your care with the clinic has ended. Your records stay here: you can still read and "
    "share them, and contact the clinic whenever you need.",
}
_missing = set(CARE_STAGES) - set(CARE_STAGE_MEANINGS)
if _missing:
    raise ValueError(f"care stages without a plain-words meaning: {_missing}")


@dataclass(frozen=True)
class Dashboard:
    patient: Patient
    stage_label: str
    stage_meaning: str
    needs_you: list[feed.Attention]
    recent: list[feed.TimelineItem]
    more_activity: bool  # older items than the recent ones exist


def needs_you(tenant_id: int, patient_id: int, user_id: int) -> list[feed.Attention]:
    """What every registered attention source says needs the patient now, in registration order."""
    found: list[feed.Attention] = []
    for source in feed.ATTENTION_SOURCES:
        found.extend(item for item in source(tenant_id, patient_id, user_id) if item.count > 0)
    return found


def dashboard(actor: Actor, patient_id: int) -> Dashboard:
    """The home page of the session's patient (`patient_id`), audited as one read."""
    check_own_patient(actor, patient_id)
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound("patient")
    recent, more = read_items(actor.tenant_id, patient_id, kinds_shown=chosen_kinds([]), limit=RECENT_ITEMS)
    attention = needs_you(actor.tenant_id, patient_id, actor.user_id)
    record_event(
        actor, "portal.home.view", resource_type="patient", resource_id=patient_id, patient_id=patient_id
    )
    db.session.commit()
    return Dashboard(
        patient=patient,
        stage_label=patient.care_stage_label,
        stage_meaning=CARE_STAGE_MEANINGS.get(patient.care_stage, ""),
        needs_you=attention,
        recent=recent,
        more_activity=more is not None,
    )
