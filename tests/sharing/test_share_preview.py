"""The patient's preview of a share before sending it: the provider's own sections of a share not made,
never a hidden note or a held result, nothing created (no share, no email, no access log), another
patient's record refused."""

from __future__ import annotations

import re

import pytest
import time_machine
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.sharing.models import ShareEvent, ShareLink, ShareToken, ShareVisit
from tests.factories import login, make_patient
from tests.portal import test_records_view
from tests.portal.test_records_view import HELD_VALUE, HIDDEN_NOTE, NOW
from tests.sharing.factories import make_shared_patient

HX = {"HX-Request": "true"}
BANNER = "Preview — this is what the recipient will see"
LINK = re.compile(r"/s/([A-Za-z0-9_-]{40,})")
SECTION = re.compile(r'<section class="share-section" id="([a-z]+)".*?</section>', re.S)
TAG = re.compile(r"<[^>]+>")
clinic = test_records_view.clinic  # a patient with a hidden note and a held result (the fixture)


def _form(**changes) -> dict:
    data = {
        "recipients-0-name": "Dr. Ana Ruiz",
        "recipients-0-email": "ana.ruiz@hospital.example.com",
        "scope": "all",
        "days": "30",
        "message": "For my appointment on Friday.",
    }
    data.update(changes)
    return data


def _sections(html: str) -> dict[str, str]:
    """Each shared section's words (its markup and links left out)."""
    return {
        match.group(1): " ".join(TAG.sub(" ", match.group(0)).split()) for match in SECTION.finditer(html)
    }


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _nothing_made(outbox_dir) -> None:
    assert _count(ShareLink) == _count(ShareToken) == _count(ShareEvent) == _count(ShareVisit) == 0
    assert not list(outbox_dir.glob("*.eml"))


def _provider_print_view(app, token: str) -> str:
    provider = app.test_client()
    provider.post(f"/s/{token}", data={})
    provider.get(f"/s/{token}/check")
    page = provider.get(f"/s/{token}/print")
    assert page.status_code == 200
    return page.get_data(as_text=True)


@pytest.mark.parametrize("scope", ["all", "records", "types"])
def test_the_preview_shows_what_the_provider_sees_and_makes_nothing(
    app,
    client,
    clinic,
    outbox_dir,
    drain_jobs,
    scope,
):
    with time_machine.travel(NOW, tick=False):
        login(client, clinic["user"].email)
        extra = {}
        if scope == "records":
            extra = {"scope_record_ids": [str(clinic["record"].id)]}
        if scope == "types":
            extra = {"scope_types": ["labs", "visits"]}
        answer = client.post("/portal/shares/new", data={**_form(scope=scope, **extra), "preview": "1"})
        assert answer.status_code == 200
        preview = answer.get_data(as_text=True)
        assert BANNER in preview and "<html" in preview and "Create the link" in preview
        assert HIDDEN_NOTE not in preview and f"{HELD_VALUE:g}" not in preview and "Glucose" not in preview
        # No working download, print or file action in the preview.
        assert "/s/" not in preview and "Download PDF" not in preview and "Print view" not in preview
        drain_jobs()
        _nothing_made(outbox_dir)
        audited = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "share.preview")).all()
        assert [(e.actor_user_id, e.actor_role, e.patient_id) for e in audited] == [
            (clinic["user"].id, "patient", clinic["patient"].id)
        ]

        # htmx: the form's section alone, with the preview in it.
        fragment = client.post(
            "/portal/shares/new", data={**_form(scope=scope, **extra), "preview": "1"}, headers=HX
        ).get_data(as_text=True)
        assert "<html" not in fragment and BANNER in fragment and 'id="share-form"' in fragment

        made = client.post("/portal/shares/new", data=_form(scope=scope, **extra))
        assert made.status_code == 200
        (token,) = set(LINK.findall(made.get_data(as_text=True)))
        provider = _provider_print_view(app, token)
        previewed, seen = _sections(preview), _sections(provider)
        assert seen and set(previewed) == set(seen)
        for name in ("summary", "records", "labs", "scores"):
            if name in seen:
                assert previewed[name] == seen[name], name
        if scope != "types":
            assert "Fatigue and itching" in previewed["records"]  # the visit with the hidden note
            assert ("Follow-up of liver tests" in previewed["records"]) == (scope == "all")
        assert "ALT" in previewed["labs"]


def test_a_preview_with_faults_shows_the_senders_messages_and_makes_nothing(
    client,
    clinic,
    outbox_dir,
):
    with time_machine.travel(NOW, tick=False):
        login(client, clinic["user"].email)
        bad = _form(**{"recipients-0-email": "not-an-email", "scope": "types"})
        sent = client.post("/portal/shares/new", data=bad)
        previewed = client.post("/portal/shares/new", data={**bad, "preview": "1"})
        assert sent.status_code == previewed.status_code == 422
        for message in ("not-an-email is not an email address.", "Choose at least one kind of record."):
            assert message in sent.get_data(as_text=True) and message in previewed.get_data(as_text=True)
        assert BANNER not in previewed.get_data(as_text=True)
        _nothing_made(outbox_dir)
        assert not db.session.scalars(select(AuditEvent).where(AuditEvent.action == "share.preview")).all()


def test_another_patients_record_in_the_scope_is_refused(client, clinic, outbox_dir):
    with time_machine.travel(NOW, tick=False):
        other = make_shared_patient(clinic["tenant"], clinic["doctor"])
        make_patient(clinic["tenant"])
        theirs = db.session.scalar(
            select(MedicalRecord.id).where(
                MedicalRecord.patient_id == other.id, MedicalRecord.status == FINALIZED
            )
        )
        login(client, clinic["user"].email)
        answer = client.post(
            "/portal/shares/new",
            data={**_form(scope="records", scope_record_ids=[str(theirs)]), "preview": "1"},
        )
        assert answer.status_code in (404, 422)
        text = answer.get_data(as_text=True)
        assert BANNER not in text and "Fatigue and itching" not in text.split("</form>")[-1]
        _nothing_made(outbox_dir)


def test_a_shared_file_is_named_in_the_preview_with_no_way_to_open_or_download_it(
    app, client, clinic, outbox_dir
):
    from tests.files import samples
    from tests.sharing.test_provider import _attach

    with time_machine.travel(NOW, tick=False):
        _attach(clinic["record"], "liver-scan.png", samples.png(), "png", "image/png")
        login(client, clinic["user"].email)
        answer = client.post("/portal/shares/new", data={**_form(allow_download="y"), "preview": "1"})
        assert answer.status_code == 200
        files = _sections(answer.get_data(as_text=True))["files"]
        assert "liver-scan.png" in files and "Download" not in files and "View" not in files
        text = answer.get_data(as_text=True)
        assert "/s/" not in text and "<img" not in text.split(BANNER)[-1]
        _nothing_made(outbox_dir)
