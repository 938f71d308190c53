"""The demo clinics' record templates: general visit, hepatology follow-up, vaccination, lab review."""

from __future__ import annotations

from ..accounts.models import Tenant, User
from ..extensions import db
from ..records.icd10 import find_code
from ..records.models import RecordTemplate, TemplateVersion

DEMO_TEMPLATES = (
    {
        "name": "General visit", "specialty": "Primary care",
        "description": "A full visit: vitals, diagnoses, prescriptions, plan and follow-up.",
        "sections": ["vitals", "diagnoses", "prescriptions", "plan", "follow_up"],
        "prefill": {"treatment_plan": "Discussed findings and plan with the patient."},
        "diagnoses": [],
    },
    {
        "name": "Hepatology follow-up", "specialty": "Hepatology",
        "description": "Cirrhosis review with the assessment used by Child-Pugh.",
        "sections": ["vitals", "diagnoses", "prescriptions", "assessment", "plan", "follow_up"],
        "prefill": {"chief_complaint": "Cirrhosis follow-up",
                    "treatment_plan": "Review labs and MELD; sodium restriction; alcohol abstinence.",
                    "follow_up_days": 90},
        "diagnoses": ["K70.31"],
    },
    {
        "name": "Vaccination", "specialty": "Preventive care",
        "description": "A vaccination visit.",
        "sections": ["vitals", "diagnoses", "plan"],
        "prefill": {"chief_complaint": "Vaccination", "notes": "No adverse reaction after 15 minutes."},
        "diagnoses": ["Z23"],
    },
    {
        "name": "Lab review", "specialty": "Primary care",
        "description": "Going through recent lab results with the patient.",
        "sections": ["diagnoses", "plan", "follow_up"],
        "prefill": {"chief_complaint": "Lab results review", "follow_up_days": 180},
        "diagnoses": [],
    },
)  # fmt: skip


def seed_templates(tenant: Tenant, admin: User) -> list[RecordTemplate]:
    """The four demo templates, each at version 1 (the caller commits)."""
    templates = []
    for spec in DEMO_TEMPLATES:
        diagnoses = []
        for position, raw in enumerate(spec["diagnoses"]):
            code = find_code(raw)
            if code is not None:
                diagnoses.append({"code": code.display_code, "name": code.name, "primary": position == 0})
        template = RecordTemplate(
            tenant_id=tenant.id,
            name=spec["name"],
            specialty=spec["specialty"],
            description=spec["description"],
        )
        template.versions.append(
            TemplateVersion(
                tenant_id=tenant.id,
                version=1,
                prefill=dict(spec["prefill"]),
                sections=list(spec["sections"]),
                default_diagnoses=diagnoses,
                created_by_id=admin.id,
            )
        )
        templates.append(template)
    db.session.add_all(templates)
    db.session.flush()
    return templates
