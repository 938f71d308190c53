"""Record templates: per specialty, what a new record starts with (pre-filled text, the sections shown,
default diagnoses). Every change makes a new immutable version; records remember theirs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from ..audit.services import Actor, record_event
from ..errors import NotFound
from ..extensions import db
from ..permissions import require
from ..tenancy import get_scoped, scoped
from .icd10 import find_code
from .models import MedicalRecord, RecordTemplate, TemplateVersion
from .services import RecordError

SECTIONS = {
    "vitals": "Vital signs",
    "diagnoses": "Diagnoses",
    "prescriptions": "Prescriptions",
    "labs": "Lab results",
    "assessment": "Liver assessment",
    "plan": "Plan and notes",
    "follow_up": "Follow-up",
}
PREFILL_TEXT_FIELDS = ("chief_complaint", "treatment_plan", "notes")
MAX_DEFAULT_DIAGNOSES = 4
MAX_FOLLOW_UP_DAYS = 730


@dataclass
class TemplateInput:
    name: str
    specialty: str
    description: str = ""
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    chief_complaint: str = ""
    treatment_plan: str = ""
    notes: str = ""
    follow_up_days: int | None = None
    default_diagnosis_codes: list[str] = field(default_factory=list)


def clinic_templates(tenant_id: int, *, include_archived: bool = False) -> list[RecordTemplate]:
    query = scoped(RecordTemplate, tenant_id)
    if not include_archived:
        query = query.where(RecordTemplate.active.is_(True))
    return list(db.session.scalars(query.order_by(RecordTemplate.specialty, RecordTemplate.name)))


def current_version(tenant_id: int, template_id: int) -> TemplateVersion | None:
    """The newest version of an active template of the clinic."""
    template = get_scoped(RecordTemplate, template_id, tenant_id)
    if template is None or not template.active:
        return None
    return template.current


def get_version(tenant_id: int, version_id: int | None) -> TemplateVersion | None:
    return get_scoped(TemplateVersion, version_id, tenant_id) if version_id else None


def _content(data: TemplateInput) -> tuple[dict, list[str], list[dict]]:
    unknown = set(data.sections) - set(SECTIONS)
    if unknown:
        raise RecordError("Choose sections from the list.", "sections")
    if data.follow_up_days is not None and not 1 <= data.follow_up_days <= MAX_FOLLOW_UP_DAYS:
        raise RecordError(f"Follow-up is between 1 and {MAX_FOLLOW_UP_DAYS} days.", "follow_up_days")
    if len(data.default_diagnosis_codes) > MAX_DEFAULT_DIAGNOSES:
        raise RecordError(f"At most {MAX_DEFAULT_DIAGNOSES} default diagnoses.", "default_diagnoses")
    diagnoses = []
    for position, raw in enumerate(data.default_diagnosis_codes):
        code = find_code(raw)
        if code is None:
            raise RecordError(f"“{raw}” is not an ICD-10-CM code.", "default_diagnoses")
        diagnoses.append({"code": code.display_code, "name": code.name, "primary": position == 0})
    prefill: dict = {
        name: getattr(data, name).strip() for name in PREFILL_TEXT_FIELDS if getattr(data, name).strip()
    }
    if data.follow_up_days:
        prefill["follow_up_days"] = data.follow_up_days
    sections = [name for name in SECTIONS if name in data.sections]
    return prefill, sections, diagnoses


def _check_name(actor: Actor, data: TemplateInput, template_id: int | None = None) -> None:
    name = data.name.strip()
    if not name:
        raise RecordError("Enter a name.", "name")
    if not data.specialty.strip():
        raise RecordError("Enter the specialty.", "specialty")
    clash = db.session.scalar(
        scoped(RecordTemplate, actor.tenant_id).where(func.lower(RecordTemplate.name) == name.lower())
    )
    if clash is not None and clash.id != template_id:
        raise RecordError("Another template has this name.", "name")


def create_template(actor: Actor, data: TemplateInput) -> RecordTemplate:
    """A new template with its version 1."""
    require(actor, "record_template.manage")
    _check_name(actor, data)
    prefill, sections, diagnoses = _content(data)
    template = RecordTemplate(
        tenant_id=actor.tenant_id,
        name=data.name.strip(),
        specialty=data.specialty.strip(),
        description=data.description.strip() or None,
    )
    template.versions.append(
        TemplateVersion(
            tenant_id=actor.tenant_id,
            version=1,
            prefill=prefill,
            sections=sections,
            default_diagnoses=diagnoses,
            created_by_id=actor.user_id,
        )
    )
    db.session.add(template)
    db.session.flush()
    record_event(
        actor,
        "template.create",
        resource_type="record_template",
        resource_id=template.id,
        changed_fields=["name", "specialty", "description", "prefill", "sections", "default_diagnoses"],
    )
    db.session.commit()
    return template


def update_template(actor: Actor, template_id: int, data: TemplateInput) -> RecordTemplate:
    """Rename or describe a template; a change of its content makes a new version (records keep theirs)."""
    require(actor, "record_template.manage")
    template = get_scoped(RecordTemplate, template_id, actor.tenant_id)
    if template is None:
        raise NotFound(template_id)
    _check_name(actor, data, template.id)
    prefill, sections, diagnoses = _content(data)
    changed = []
    for name, value in (
        ("name", data.name.strip()),
        ("specialty", data.specialty.strip()),
        ("description", data.description.strip() or None),
    ):
        if getattr(template, name) != value:
            setattr(template, name, value)
            changed.append(name)
    current = template.current
    if current is None or (current.prefill, current.sections, current.default_diagnoses) != (
        prefill,
        sections,
        diagnoses,
    ):
        template.versions.append(
            TemplateVersion(
                tenant_id=actor.tenant_id,
                version=(current.version + 1) if current else 1,
                prefill=prefill,
                sections=sections,
                default_diagnoses=diagnoses,
                created_by_id=actor.user_id,
            )
        )
        changed.append("version")
    if changed:
        record_event(
            actor,
            "template.update",
            resource_type="record_template",
            resource_id=template.id,
            changed_fields=changed,
        )
        db.session.commit()
    return template


def set_template_active(actor: Actor, template_id: int, active: bool) -> RecordTemplate:
    require(actor, "record_template.manage")
    template = get_scoped(RecordTemplate, template_id, actor.tenant_id)
    if template is None:
        raise NotFound(template_id)
    if template.active != active:
        template.active = active
        record_event(
            actor,
            "template.activated" if active else "template.archived",
            resource_type="record_template",
            resource_id=template.id,
            changed_fields=["active"],
        )
        db.session.commit()
    return template


def version_counts(tenant_id: int) -> dict[int, int]:
    """How many records came from each template (any version), for the templates page."""

    rows = db.session.execute(
        select(TemplateVersion.template_id, func.count(MedicalRecord.id))
        .join(MedicalRecord, MedicalRecord.template_version_id == TemplateVersion.id)
        .where(TemplateVersion.tenant_id == tenant_id, MedicalRecord.tenant_id == tenant_id)
        .group_by(TemplateVersion.template_id)
    )
    return dict(rows.all())
