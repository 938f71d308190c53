"""The accounting of disclosures: six years of the clinic's days, share links and their opens, staff exports;
the patient's own only; a PDF that says what it lists, audited."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pytest
import time_machine
from pypdf import PdfReader
from sqlalchemy import select

from healthcrm.audit.disclosures import disclosures, disclosures_pdf
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, record_event
from healthcrm.errors import NotFound
from healthcrm.extensions import db
from healthcrm.sharing.models import (
    EVENT_DOWNLOAD,
    EVENT_OPEN,
    EVENT_PASSCODE_FAILED,
    EVENT_VIEW,
    SCOPE_ALL,
    SCOPE_TYPES,
    ShareEvent,
    ShareLink,
)
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

NOW = datetime(2026, 6, 1, 12, 0)  # UTC; 08:00 in New York
ZONE = "America/New_York"
# Six years of the clinic's days: from its midnight of 1 June 2020 (04:00 UTC, daylight time).
PERIOD_START = datetime(2020, 6, 1, 4, 0)


def _share(patient, name: str, email: str, created_at: datetime, **fields) -> ShareLink:
    share = ShareLink(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        recipient_name=name,
        recipient_email=email,
        scope=fields.pop("scope", SCOPE_ALL),
        created_at=created_at,
        expires_at=created_at + timedelta(days=30),
        **fields,
    )
    db.session.add(share)
    db.session.flush()
    return share


def _event(share: ShareLink, kind: str, at: datetime, detail: str | None = None) -> None:
    db.session.add(
        ShareEvent(tenant_id=share.tenant_id, share_id=share.id, kind=kind, detail=detail, occurred_at=at)
    )


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def clinic(app):
    tenant = make_tenant("Riverside Clinic", timezone=ZONE)
    patient = make_patient(tenant, first_name="Maria", last_name="Lopez", mrn="RC-000042")
    other = make_patient(tenant)
    return tenant, patient, other


def test_six_years_of_the_clinics_days_shares_and_their_opens_newest_first(clinic):
    tenant, patient, other = clinic
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Reyes")
    with time_machine.travel(NOW, tick=False):
        _share(patient, "Old Hospital", "old@example.org", NOW - timedelta(days=7 * 365))
        _share(patient, "Just Too Old", "edge@example.org", PERIOD_START - timedelta(minutes=1))
        edge = _share(patient, "Just In Time", "in@example.org", PERIOD_START)
        five = _share(
            patient,
            "Dr. Ana Ortiz",
            "ortiz@example.org",
            NOW - timedelta(days=5 * 365),
            scope=SCOPE_TYPES,
            scope_types=["labs", "allergies"],
            allow_download=True,
            created_by_id=doctor.id,
            created_by_staff=True,
        )
        opened = five.created_at + timedelta(days=1)
        _event(five, EVENT_PASSCODE_FAILED, opened - timedelta(minutes=1))  # disclosed nothing
        _event(five, EVENT_OPEN, opened)
        _event(five, EVENT_VIEW, opened + timedelta(minutes=1), "Lab results")
        _event(five, EVENT_DOWNLOAD, opened + timedelta(minutes=2), "cbc.pdf")
        theirs = _share(other, "Somebody Else", "else@example.org", NOW - timedelta(days=10))
        _event(theirs, EVENT_OPEN, NOW - timedelta(days=9))
        db.session.commit()

        rows = disclosures(Actor(tenant_id=tenant.id, user_id=doctor.id, role="doctor"), patient.id)

    assert [(r.kind, r.recipient_name) for r in rows] == [
        ("access", "Dr. Ana Ortiz"),
        ("access", "Dr. Ana Ortiz"),
        ("access", "Dr. Ana Ortiz"),
        ("share", "Dr. Ana Ortiz"),
        ("share", "Just In Time"),
    ]
    assert [r.what for r in rows[:3]] == ["Downloaded cbc.pdf", "Viewed Lab results", "Opened the link"]
    assert rows[0].purpose == f"Through the link shared on {five.created_at:%d %b %Y}"
    shared = rows[3]
    assert shared.what == "Allergies, lab results (downloads allowed)"
    assert shared.purpose == "Shared at your request by Dr. Sam Reyes (clinic staff)"
    assert shared.recipient_email == "ortiz@example.org" and shared.note.startswith("Link valid until")
    assert rows[4].share_id == edge.id and rows[4].purpose == "Shared at your request"


def test_staff_exports_are_disclosures_the_patients_own_are_not(clinic):
    tenant, patient, _ = clinic
    nurse = make_user(tenant, "nurse", full_name="Nora Nurse")
    portal_user = make_portal_user(patient)
    with time_machine.travel(NOW, tick=False):
        for actor in (
            Actor(tenant_id=tenant.id, user_id=nurse.id, role="nurse"),
            Actor(tenant_id=tenant.id, user_id=portal_user.id, role="patient"),
        ):
            record_event(actor, "patient.export", resource_type="patient", resource_id=patient.id,
                         patient_id=patient.id)  # fmt: skip
        db.session.commit()
        rows = disclosures(Actor(tenant_id=tenant.id, user_id=portal_user.id, role="patient"), patient.id)
    assert [(r.kind, r.recipient_name, r.purpose) for r in rows] == [
        ("export", "Nora Nurse (Nurse)", "Exported by clinic staff")
    ]


def test_a_patient_gets_only_their_own(clinic):
    tenant, patient, other = clinic
    user = make_portal_user(patient)
    with pytest.raises(NotFound):
        disclosures(Actor(tenant_id=tenant.id, user_id=user.id, role="patient"), other.id)


def test_the_patient_downloads_the_pdf_from_the_access_page(clinic, client):
    _, patient, other = clinic
    user = make_portal_user(patient)
    with time_machine.travel(NOW, tick=False):
        share = _share(patient, "Dr. Ana Ortiz", "ortiz@example.org", datetime(2021, 6, 2, 14, 30))
        _event(share, EVENT_OPEN, datetime(2021, 6, 3, 13, 5))
        _share(patient, "Old Hospital", "old@example.org", datetime(2019, 5, 1, 12, 0))
        _share(other, "Somebody Else", "else@example.org", datetime(2025, 1, 1, 12, 0))
        db.session.commit()
        login(client, user.email)
        page = client.get("/portal/access").get_data(as_text=True)
        assert "/portal/access/disclosures.pdf" in page and "Download accounting of disclosures (PDF)" in page
        response = client.get("/portal/access/disclosures.pdf")

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert (
        disposition.startswith("attachment")
        and f"accounting-of-disclosures-{patient.id}-20260601.pdf" in disposition
    )
    text = _text(response.data)
    flat = " ".join(text.split())
    assert "Accounting of disclosures" in flat and "Riverside Clinic" in flat
    assert "Maria Lopez" in flat and "RC-000042" in flat and "01 Jan 1970" in flat
    assert "01 Jun 2020 to 01 Jun 2026" in flat and "America/New_York" in flat
    assert "Dr. Ana Ortiz" in flat and "ortiz@example.org" in flat
    # The clinic's wall clock: 14:30 UTC is 10:30 in New York (daylight time), 13:05 is 09:05.
    assert re.search(r"02 Jun 2021\s*10:30", text) and re.search(r"03 Jun 2021\s*09:05", text)
    assert "Shared at your request" in flat and "Opened the link" in flat
    assert "The complete health record" in flat
    assert "Who has seen my record" in flat and "treatment" in flat
    assert "Old Hospital" not in flat and "Somebody Else" not in flat
    assert "page 1 of 1" in flat
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "portal.disclosures_pdf")).one()
    assert (event.patient_id, event.resource_type, event.resource_id) == (
        patient.id,
        "patient",
        str(patient.id),
    )
    assert event.actor_user_id == user.id


def test_an_empty_period_says_no_disclosures_were_made(clinic, client):
    _, patient, _ = clinic
    login(client, make_portal_user(patient).email)
    response = client.get("/portal/access/disclosures.pdf")
    assert response.status_code == 200
    assert "No disclosures of your health information were made in this period." in " ".join(
        _text(response.data).split()
    )


def test_staff_with_export_permission_only_and_never_another_clinics_patient(clinic, client):
    tenant, patient, _ = clinic
    abroad = make_patient(make_tenant("Other Clinic"))
    doctor = make_user(tenant, "doctor")
    login(client, doctor.email)
    export_page = client.get(f"/patients/{patient.id}/export").get_data(as_text=True)
    assert f"/patients/{patient.id}/disclosures.pdf" in export_page
    response = client.get(f"/patients/{patient.id}/disclosures.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get(f"/patients/{abroad.id}/disclosures.pdf").status_code == 404
    assert client.get("/patients/999999/disclosures.pdf").status_code == 404
    written = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.disclosures_pdf")
    ).all()
    assert [(e.patient_id, e.actor_user_id) for e in written] == [(patient.id, doctor.id)]

    client.post("/logout", data={})
    login(client, make_user(tenant, "front_desk").email)
    assert client.get(f"/patients/{patient.id}/disclosures.pdf").status_code == 403


def test_two_hundred_disclosures_lay_out_on_a_few_pages(clinic):
    tenant, patient, _ = clinic
    doctor = make_user(tenant, "doctor")
    with time_machine.travel(NOW, tick=False):
        for n in range(50):
            share = _share(
                patient, f"Dr. Provider {n}", f"p{n}@example.org", NOW - timedelta(days=20 * n + 5)
            )
            for minutes in range(3):
                _event(
                    share, EVENT_VIEW, share.created_at + timedelta(days=1, minutes=minutes), "Lab results"
                )
        db.session.commit()
        pdf = disclosures_pdf(Actor(tenant_id=tenant.id, user_id=doctor.id, role="doctor"), patient.id)
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert 3 <= len(pages) <= 12
    assert f"page {len(pages)} of {len(pages)}" in " ".join(pages[-1].extract_text().split())
