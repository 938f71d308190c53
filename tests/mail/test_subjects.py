"""Every email's subject is fixed by its template: no names, no clinic, nothing about anyone's health (a
subject shows on lock screens and in shared inboxes unopened); every HTML email fits a phone."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from healthcrm.mail.services import SUBJECTS, compose
from tests.factories import make_patient, make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_share

MAIL_TEMPLATES = Path(__file__).parents[2] / "healthcrm" / "templates" / "mail"
# What a subject must never carry: words about health, and what could name a person or a clinic.
HEALTH_WORDS = re.compile(
    r"\b(health|records?|labs?|results?|diagnos\w*|patients?|clinics?|liver|care|medic\w*|doctors?|visits?)\b",
    re.IGNORECASE,
)
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


def _email_templates() -> list[str]:
    """The templates that are emails: a plain-text part beside the HTML one."""
    return sorted(path.stem for path in MAIL_TEMPLATES.glob("*.txt") if (path.with_suffix(".html")).exists())


def test_every_email_template_has_a_fixed_subject_without_names_or_health():
    assert sorted(SUBJECTS) == _email_templates()
    for template, subject in SUBJECTS.items():
        assert "{" not in subject and "%" not in subject, template
        assert not HEALTH_WORDS.search(subject), f"{template}: {subject!r}"


def test_every_html_email_extends_the_layout_that_has_a_viewport():
    layout = (MAIL_TEMPLATES / "_layout.html").read_text()
    assert VIEWPORT in layout and '<meta charset="utf-8">' in layout
    for template in _email_templates():
        assert '{% extends "mail/_layout.html" %}' in (MAIL_TEMPLATES / f"{template}.html").read_text()


@pytest.fixture
def people(app):
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor")
    patient = make_patient(tenant, first_name="Maria", last_name="Lopez")
    portal = make_portal_user(patient)
    share = make_share(patient, recipient_name="Dr. Ana Ruiz")
    return {"tenant": tenant, "doctor": doctor, "patient": patient, "portal": portal, "share": share}


def _contexts(people) -> dict[str, tuple[str, dict]]:
    share, portal, doctor = people["share"], people["portal"], people["doctor"]
    url = "http://127.0.0.1:5000/x"
    appointment = {
        "clinic": people["tenant"].name,
        "type_name": "Liver check",
        "when": "Tue 07 Jan 2031, 10:00 (Europe/Berlin)",
        "is_video": True,
        "video_link": "https://video.example.test/room",
        "address": None,
        "preparation": "Do not eat for 8 hours.",
        "phone": "+49 30 1234567",
        "url": url,
    }
    return {
        "password_reset": (doctor.email, {"user": doctor, "url": url, "minutes": 30}),
        "patient_invitation": (portal.email, {"user": portal, "url": url, "days": 7}),
        "staff_invitation": (doctor.email, {"user": doctor, "url": url, "days": 7}),
        "registration": ("maria.new@example.com", {"patient": people["patient"], "url": url, "hours": 24}),
        "share_link": (
            share.recipient_email,
            {
                "share": share,
                "patient": people["patient"],
                "url": url,
                "what": "labs",
                "clinic": people["tenant"].name,
                "ends": "31 Dec 2026, 15:46 CST",
            },
        ),
        "share_code": (share.recipient_email, {"share": share, "code": "123456", "minutes": 10}),
        "share_notice": (
            portal.email,
            {"share": share, "kind": "opened", "user": portal, "paused_until": ""},
        ),
        "portal_notice": (portal.email, {"clinic": people["tenant"].name, "url": url}),
        **{
            template: (portal.email, appointment)
            for template in (
                "appointment_confirmation",
                "appointment_update",
                "appointment_cancellation",
                "appointment_reminder",
            )
        },
        "audit_alert": (
            doctor.email,
            {
                "user": doctor,
                "clinic": people["tenant"],
                "alert": {"description": "Audit log of clinic 1: the newest events were deleted."},
                "url": url,
            },
        ),
        "clinic_export_ready": (
            doctor.email,
            {
                "user": doctor,
                "clinic": people["tenant"],
                "url": url,
                "hours": 24,
                "result": {"rows": 10, "files": 2},
                "scheduled": "weekly, on Mondays at 04:00",
            },
        ),
        "clinic_export_failed": (
            doctor.email,
            {
                "user": doctor,
                "clinic": people["tenant"],
                "url": url,
                "schedule": "monthly, on the 1st at 04:00",
            },
        ),
        "file_restore_ready": (
            portal.email,
            {"clinic": people["tenant"].name, "url": url, "until": "14 Jan 2031, 10:00"},
        ),
        "storage_alert": (
            doctor.email,
            {
                "user": doctor,
                "clinic": people["tenant"],
                "label": "Monthly cost",
                "value": "$12.40",
                "limit": "$10.00",
                "day": date(2031, 1, 14),
                "url": url,
            },
        ),
        "waitlist_offer": (
            portal.email,
            {
                "clinic": people["tenant"].name,
                "when": "Tue 07 Jan 2031, 10:00 (Europe/Berlin)",
                "held_until": "08:00",
                "url": url,
            },
        ),
    }


@pytest.mark.parametrize("template", [t for t in SUBJECTS if t != "file_quarantined"])
def test_each_email_keeps_the_names_it_carries_out_of_its_subject(people, template):
    to, context = _contexts(people)[template]
    message = compose(to, template, tenant_id=people["tenant"].id, **context)
    subject = str(message["Subject"])
    assert subject == SUBJECTS[template]
    names = ("Maria", "Lopez", "Okafor", "Ana Ruiz", "Lakeside", people["portal"].full_name)
    assert not [name for name in names if name in subject]
    html = message.get_body(preferencelist=("html",)).get_content()
    assert VIEWPORT in html
