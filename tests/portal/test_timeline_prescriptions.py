"""Prescriptions on the portal timeline: those of the patient's signed visits only, filtered by their chip,
every one of them exactly once across the pages."""

from __future__ import annotations

import html
import re

import time_machine
from sqlalchemy import select

from healthcrm.extensions import db
from healthcrm.records.models import FINALIZED, MedicalRecord, Prescription
from tests.factories import login, make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_shared_patient

from .test_records_view import NOW

TITLE = re.compile(r'<p class="timeline-title"><a href="([^"]*)">([^<]*)</a>')
OLDER = re.compile(r'<a href="([^"]*)">Older</a>')


def _prescribe(record: MedicalRecord, drug: str) -> None:
    db.session.add(
        Prescription(
            tenant_id=record.tenant_id,
            record=record,
            drug=drug,
            dose="10 mg",
            route="oral",
            frequency="twice daily",
        )
    )


def _records(patient, status: str) -> list[MedicalRecord]:
    return list(
        db.session.scalars(
            select(MedicalRecord)
            .where(MedicalRecord.patient_id == patient.id, MedicalRecord.status == status)
            .order_by(MedicalRecord.id)
        )
    )


def _all_pages(client, url: str) -> list[tuple[str, str]]:
    """(link, title) of every item, following the "Older" links to the end."""
    items = []
    while url:
        page = client.get(url)
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        items.extend((html.unescape(link), html.unescape(title)) for link, title in TITLE.findall(text))
        older = OLDER.search(text)
        url = html.unescape(older.group(1)) if older else None
    return items


def test_prescriptions_appear_filter_and_page_without_loss_or_repeat(app, client):
    with time_machine.travel(NOW, tick=False):
        tenant = make_tenant()
        doctor = make_user(tenant, "doctor")
        patient = make_shared_patient(tenant, doctor)  # one prescription (Spironolactone) on a signed visit
        first, second = _records(patient, FINALIZED)
        # 25 more on the two signed visits: many at the very same time (a tie the cursor must break).
        for number in range(25):
            _prescribe(first if number % 2 else second, f"Drug{number:02d}")
        (draft,) = _records(patient, "draft")
        _prescribe(draft, "DraftOnlyDrug")
        other = make_shared_patient(tenant, doctor)
        _prescribe(_records(other, FINALIZED)[0], "OtherPatientDrug")
        db.session.commit()
        user = make_portal_user(patient)
        login(client, user.email)

        everything = client.get("/portal/timeline").get_data(as_text=True)
        assert "Prescriptions" in everything  # the filter's chip
        assert "Prescribed: Drug24" in everything

        items = _all_pages(client, "/portal/timeline?kind=prescription")
        titles = [title for _link, title in items]
        expected = {f"Prescribed: Drug{number:02d}" for number in range(25)} | {"Prescribed: Spironolactone"}
        assert len(titles) == len(set(titles)) == 26  # none repeated across the pages
        assert set(titles) == expected  # none lost, nothing but prescriptions, none of a draft or another's
        assert {link for link, _title in items} == {"/portal/records/medications"}
        # Newest first: the second (later) visit's prescriptions before the first's.
        second_titles = {f"Prescribed: Drug{n:02d}" for n in range(0, 25, 2)} | {"Prescribed: Spironolactone"}
        assert set(titles[: len(second_titles)]) == second_titles

        mixed = _all_pages(client, "/portal/timeline")
        mixed_titles = [title for _link, title in mixed]
        prescribed = [title for title in mixed_titles if title.startswith("Prescribed:")]
        assert len(prescribed) == 26 and set(prescribed) == expected  # mixed with the other kinds too
        assert "A visit was signed" in mixed_titles
        assert not any("DraftOnlyDrug" in t or "OtherPatientDrug" in t for t in mixed_titles)
