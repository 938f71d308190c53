"""Opening an archived file: the archived page with the retrieval speeds and their prices, one restore for
two requests at once, ready → the requester told in the app and by email, the copy's end, the portal's
documents, who may ask (the same as who may open; another clinic's or patient's id is 404), and the share
link's "being retrieved"."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest
import time_machine
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.files.models import AttachmentVersion
from healthcrm.jobs.models import Job
from healthcrm.portal.models import Notification
from healthcrm.sharing.models import SCOPE_ALL
from healthcrm.storage_cost import restores
from healthcrm.storage_cost.prices import GB
from healthcrm.storage_cost.restore_models import (
    EXPIRED,
    PENDING,
    READY,
    VIA_SHARE,
    VIA_STAFF,
    FileRestore,
)
from tests.concurrency import parallel
from tests.sharing.factories import make_share
from tests.sharing.test_provider import _link
from tests.storage_cost.restore_fixtures import (
    PDF,
    clinic,
    local_now,
    local_slow,
    moto_url,
    other_clinic,
    record_of,
    s3,
    signed_in,
    store,
    stored_file,
)

__all__ = ["clinic", "local_now", "local_slow", "moto_url", "other_clinic", "s3", "store"]

HX = {"HX-Request": "true"}


def _archived_url(version: AttachmentVersion) -> str:
    return f"/files/{version.attachment_id}/versions/{version.id}/archived"


def _file_url(version: AttachmentVersion, what: str) -> str:
    return f"/files/{version.attachment_id}/versions/{version.id}/{what}"


def _record_file(clinic, **kwargs) -> AttachmentVersion:
    return stored_file(
        tenant_id=clinic["tenant"].id,
        patient_id=clinic["patient"].id,
        record_id=clinic["record"].id,
        **kwargs,
    )


def _document(clinic, patient_key: str = "patient", **kwargs) -> AttachmentVersion:
    return stored_file(
        tenant_id=clinic["tenant"].id, patient_id=clinic[patient_key].id, record_id=None, **kwargs
    )


def _emails(outbox_dir) -> list:
    messages = []
    for path in sorted(outbox_dir.glob("*.eml")):
        with path.open("rb") as handle:
            messages.append(BytesParser(policy=policy.default).parse(handle))
    return messages


def _restores(version: AttachmentVersion) -> list[FileRestore]:
    return list(
        db.session.scalars(
            select(FileRestore)
            .where(FileRestore.tenant_id == version.tenant_id, FileRestore.version_id == version.id)
            .order_by(FileRestore.id)
        )
    )


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- the archived page --------------------------------------------------------------------------------------


def test_opening_an_archived_file_shows_its_archived_page_with_speeds_and_prices(app, clinic, s3):
    # 50 GB as stored, so every price shows in cents (S3 us-east-1 prices, storage_cost/prices.py).
    version = _record_file(clinic, stored_size=50 * GB)
    doctor = signed_in(app, clinic["doctor"])
    for what in ("view", "download"):
        answer = doctor.get(_file_url(version, what))
        assert answer.status_code == 303, what
        assert answer.headers["Location"].endswith(_archived_url(version))
    page = doctor.get(_archived_url(version))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "This file is archived" in text
    # GLACIER offers the three speeds with the wait S3 documents and the price for 50 GB:
    # Expedited 50 × $0.03 + $10 / 1,000 requests; Standard 50 × $0.01 + $0.05 / 1,000; Bulk free;
    # keeping the copy 7 days as STANDARD: 50 × $0.023 × 7 / 30 = $0.27.
    assert "ready in about 5 minutes" in text and "ready in about 5 hours" in text
    assert "ready in about 12 hours" in text
    assert "$1.78" in text and "($1.51 to retrieve, $0.27 to keep the copy 7 days)" in text
    assert "$0.77" in text and "($0.50 to retrieve, $0.27 to keep the copy 7 days)" in text
    assert "(free to retrieve, $0.27 to keep the copy 7 days)" in text
    assert 'value="Standard" checked' in text
    # Nothing was asked yet: no row, no job.
    assert _restores(version) == []


def test_deep_archive_has_no_expedited_retrieval(app, clinic, s3):
    version = _record_file(clinic, storage_class="DEEP_ARCHIVE", stored_size=10 * GB)
    text = signed_in(app, clinic["doctor"]).get(_archived_url(version)).get_data(as_text=True)
    assert 'value="Expedited"' not in text
    assert 'value="Standard"' in text and 'value="Bulk"' in text
    assert "ready in about 12 hours" in text and "ready in about 2 days" in text
    # 10 × $0.02 + $0.10 / 1,000 = $0.2001 to retrieve at Standard.
    assert "($0.20 to retrieve" in text


def test_the_attachment_page_and_the_record_list_say_archived(app, clinic, local_now):
    version = _record_file(clinic)
    doctor = signed_in(app, clinic["doctor"])
    page = doctor.get(f"/files/{version.attachment_id}").get_data(as_text=True)
    assert "This file is archived" in page and "Retrieve the file" in page
    assert _file_url(version, "view") not in page  # no frame or link that would only fail
    files = doctor.get(f"/records/{clinic['record'].id}/files", headers=HX).get_data(as_text=True)
    assert '<span class="badge warn">Archived</span>' in files


def test_a_version_a_lifecycle_rule_archived_since_the_refresh_is_found_when_opened(app, clinic, local_now):
    version = _record_file(clinic, storage_class="STANDARD")
    local_now.set_storage_class(version.storage_key, "GLACIER")  # the app's row still says STANDARD
    answer = signed_in(app, clinic["doctor"]).get(_file_url(version, "download"))
    assert answer.status_code == 303 and answer.headers["Location"].endswith(_archived_url(version))
    signed_in(app, clinic["doctor"]).get(_archived_url(version))
    db.session.refresh(version)
    assert version.storage_class == "GLACIER"


# --- asking, ready, told ------------------------------------------------------------------------------------


def test_a_restore_is_asked_for_then_ready_and_the_requester_told_in_the_app_and_by_email(
    app, clinic, store, outbox_dir
):
    version = _record_file(clinic)
    doctor = signed_in(app, clinic["doctor"])
    answer = doctor.post(_archived_url(version), data={"tier": "Expedited"})
    assert answer.status_code == 303
    [restore] = _restores(version)
    assert (restore.tier, restore.via, restore.requested_by_id) == (
        "Expedited",
        VIA_STAFF,
        clinic["doctor"].id,
    )
    # moto restores at once, and so does the folder with no delay: the job found the copy ready.
    assert restore.status == READY and restore.ready_at is not None and restore.started_at is not None
    assert restore.expires_at is not None and restore.expires_at > utcnow() + timedelta(days=6)
    assert [job.kind for job in db.session.scalars(select(Job).order_by(Job.created_at))] == [
        "storage.restore",
        "storage.restore_email",
    ]
    [asked] = _events("file.restore_requested")
    [ready] = _events("file.restore_ready")
    for event in (asked, ready):
        assert (event.resource_type, event.resource_id) == ("attachment_version", str(version.id))
        assert event.patient_id == clinic["patient"].id
    assert asked.actor_user_id == clinic["doctor"].id and ready.actor_role == "system"
    [notice] = db.session.scalars(select(Notification).where(Notification.user_id == clinic["doctor"].id))
    assert (
        notice.kind == "file_restore" and "scan.pdf" in notice.text and notice.link == _archived_url(version)
    )
    [email] = [m for m in _emails(outbox_dir) if m["To"] == clinic["doctor"].email]
    assert email["Subject"] == "A file you asked for is ready"
    body = email.get_body(preferencelist=("plain",)).get_content()
    assert _archived_url(version) in body and "scan.pdf" not in body  # no file name in an email
    # While the copy lasts the file opens as any other.
    opened = doctor.get(_file_url(version, "download"))
    assert opened.status_code in (200, 302)
    if opened.status_code == 200:
        assert opened.data == PDF
    page = doctor.get(_archived_url(version)).get_data(as_text=True)
    assert "Retrieved from the archive" in page
    # Running the jobs again changes nothing: no second email, no second notice.
    assert restores.start_restore(restore.id, restore.tenant_id) == "nothing to do"
    assert restores.email_ready(restore.id, restore.tenant_id) is False
    assert len([m for m in _emails(outbox_dir) if m["To"] == clinic["doctor"].email]) == 1


def test_the_htmx_post_swaps_the_panel_and_says_when_it_will_be_ready(app, clinic, local_slow):
    version = _record_file(clinic)
    doctor = signed_in(app, clinic["doctor"])
    answer = doctor.post(_archived_url(version), data={"tier": "Standard"}, headers=HX)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert text.lstrip().startswith('<section class="card restore-panel" id="restore"')
    assert "Being retrieved from the archive" in text and "Ready around" in text
    assert "You will be told in the app and by email when it is ready." in text
    assert f'data-hx-get="{_archived_url(version)}" data-hx-trigger="every 15s"' in text  # it updates itself
    polled = doctor.get(_archived_url(version), headers=HX).get_data(as_text=True)
    assert polled.lstrip().startswith('<section class="card restore-panel"') and "Ready around" in polled
    [restore] = _restores(version)
    assert restore.status == PENDING
    assert restore.expected_ready_at == restore.requested_at + timedelta(seconds=60)


def test_a_bad_tier_is_refused_in_place_and_nothing_is_asked(app, clinic, local_now):
    version = _record_file(clinic, storage_class="DEEP_ARCHIVE")
    doctor = signed_in(app, clinic["doctor"])
    for tier in ("Expedited", "Fastest", ""):
        answer = doctor.post(_archived_url(version), data={"tier": tier}, headers=HX)
        assert answer.status_code == 422
        assert "Choose one of the retrieval speeds listed." in answer.get_data(as_text=True)
    assert _restores(version) == []
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_file_that_is_not_archived_needs_no_restore(app, clinic, local_now):
    version = _record_file(clinic, storage_class="STANDARD")
    doctor = signed_in(app, clinic["doctor"])
    assert "This file opens as it is" in doctor.get(_archived_url(version)).get_data(as_text=True)
    answer = doctor.post(_archived_url(version), data={"tier": "Standard"}, headers=HX)
    assert answer.status_code == 422 and _restores(version) == []


def test_on_the_folder_the_restore_is_ready_after_its_delay_then_archived_again(
    app, clinic, local_slow, outbox_dir
):
    version = _record_file(clinic)
    doctor = signed_in(app, clinic["doctor"])
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        doctor.post(_archived_url(version), data={"tier": "Bulk"})
        [restore] = _restores(version)
        assert restore.status == PENDING
        assert doctor.get(_file_url(version, "view")).status_code == 303  # still archived
        assert "0 ready" in restores.check_restores()
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert "1 ready" in restores.check_restores()
        db.session.refresh(restore)
        assert restore.status == READY
        assert restore.expires_at == (start + timedelta(seconds=60, days=7)).replace(tzinfo=None)
        assert doctor.get(_file_url(version, "view")).status_code == 200
        assert [m["Subject"] for m in _emails(outbox_dir)] == ["A file you asked for is ready"]
        assert "0 ready" in restores.check_restores()  # once
    with time_machine.travel(start + timedelta(days=7, minutes=2), tick=False):
        assert "1 archived again" in restores.check_restores()
        db.session.refresh(restore)
        assert restore.status == EXPIRED and restore.ended_at is not None
        doctor = signed_in(app, clinic["doctor"])  # a week on: the old session has timed out
        assert doctor.get(_file_url(version, "view")).status_code == 303  # archived again
        # …and can be asked for again: the expired restore no longer holds the version's place.
        doctor.post(_archived_url(version), data={"tier": "Standard"})
        assert [r.status for r in _restores(version)] == [EXPIRED, PENDING]


def test_a_pending_restore_whose_job_never_ran_is_started_by_the_periodic_check(app, clinic, local_now):
    version = _record_file(clinic)
    now = utcnow()
    db.session.add(
        FileRestore(
            tenant_id=version.tenant_id, version_id=version.id, attachment_id=version.attachment_id,
            patient_id=clinic["patient"].id, tier="Standard", days=3, status=PENDING, via=VIA_STAFF,
            requested_by_id=clinic["doctor"].id, requested_at=now - timedelta(minutes=10),
            expected_ready_at=now,
        )
    )  # fmt: skip
    db.session.commit()
    assert "1 ready" in restores.check_restores()
    [restore] = _restores(version)
    assert restore.status == READY and restore.started_at is not None


# --- one restore for two requests ---------------------------------------------------------------------------


def test_two_requests_at_the_same_moment_start_one_restore(app, clinic, local_slow):
    version = _record_file(clinic)
    people = [clinic["doctor"].id, clinic["admin"].id]

    def load(index: int):
        from healthcrm.accounts.models import User
        from healthcrm.tenancy import get_scoped

        user = get_scoped(User, people[index], version.tenant_id)
        return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role), version.id

    def ask(given):
        actor, version_id = given
        from healthcrm.tenancy import get_scoped

        found = get_scoped(AttachmentVersion, version_id, actor.tenant_id)
        restore, started = restores.request_restore(actor, found, "Standard", via=VIA_STAFF)
        return restore.id, started

    outcomes = parallel(2, app, ask, load)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sorted(started for _id, started in outcomes) == [False, True]
    assert len({restore_id for restore_id, _ in outcomes}) == 1
    db.session.expire_all()
    assert len(_restores(version)) == 1
    assert len(_events("file.restore_requested")) == 1
    assert db.session.scalar(select(func.count()).select_from(Job).where(Job.kind == "storage.restore")) == 1


def test_the_database_keeps_one_active_restore_per_version(app, clinic, local_slow):
    version = _record_file(clinic)
    row = {
        "tenant_id": version.tenant_id, "version_id": version.id, "attachment_id": version.attachment_id,
        "patient_id": clinic["patient"].id, "tier": "Standard", "days": 7, "via": VIA_STAFF,
        "expected_ready_at": utcnow(),
    }  # fmt: skip
    db.session.add(FileRestore(**row, status=EXPIRED))
    db.session.add(FileRestore(**row, status=PENDING))
    db.session.commit()
    db.session.add(FileRestore(**row, status=READY))
    with pytest.raises(Exception, match=r"(?i)unique"):
        db.session.commit()
    db.session.rollback()


# --- who may ask --------------------------------------------------------------------------------------------


def test_whoever_may_open_the_file_may_ask_and_no_one_else(app, clinic, other_clinic, local_slow):
    version = _record_file(clinic)
    other = stored_file(
        tenant_id=other_clinic["tenant"].id,
        patient_id=other_clinic["patient"].id,
        record_id=other_clinic["record"].id,
    )
    coach = signed_in(app, clinic["coach"])  # reads files: may ask
    assert coach.get(_archived_url(version)).status_code == 200
    front_desk = signed_in(app, clinic["front_desk"])
    assert front_desk.get(_archived_url(version)).status_code == 403
    assert front_desk.post(_archived_url(version), data={"tier": "Standard"}).status_code == 403
    doctor = signed_in(app, clinic["doctor"])
    # Another clinic's version, and a version under another attachment's id: 404.
    assert doctor.get(_archived_url(other)).status_code == 404
    assert doctor.post(_archived_url(other), data={"tier": "Standard"}).status_code == 404
    wrong = f"/files/{other.attachment_id}/versions/{version.id}/archived"
    assert doctor.get(wrong).status_code == 404
    portal = signed_in(app, clinic["portal"])
    assert portal.get(_archived_url(version)).status_code == 403
    assert _restores(version) == [] and _restores(other) == []
    assert coach.post(_archived_url(version), data={"tier": "Standard"}).status_code == 303
    assert [r.requested_by_id for r in _restores(version)] == [clinic["coach"].id]


def test_restore_requests_are_rate_limited_per_person(app, clinic, local_slow):
    app.config["STORAGE_RESTORE_LIMIT"] = "2 per hour"
    versions = [_record_file(clinic, name=f"scan-{n}.pdf") for n in range(3)]
    doctor = signed_in(app, clinic["doctor"])
    answers = [doctor.post(_archived_url(v), data={"tier": "Standard"}).status_code for v in versions]
    assert answers == [303, 303, 429]
    assert sum(len(_restores(v)) for v in versions) == 2


# --- the patient's documents --------------------------------------------------------------------------------


def test_the_patient_opens_an_archived_document_and_is_told_when_it_is_ready(app, clinic, s3, outbox_dir):
    version = _document(clinic, name="letter.pdf")
    portal = signed_in(app, clinic["portal"])
    listing = portal.get("/portal/documents").get_data(as_text=True)
    assert '<span class="badge warn">Archived</span>' in listing
    archived_url = f"/portal/documents/{version.attachment_id}/archived"
    for what in ("view", "download"):
        answer = portal.get(f"/portal/documents/{version.attachment_id}/{what}")
        assert answer.status_code == 303 and answer.headers["Location"].endswith(archived_url)
    page = portal.get(archived_url).get_data(as_text=True)
    assert "This file is archived" in page and "what retrieving the file costs the clinic" in page
    assert portal.post(archived_url, data={"tier": "Standard"}).status_code == 303
    [restore] = _restores(version)
    assert restore.status == READY and restore.via == "portal"
    [notice] = db.session.scalars(select(Notification).where(Notification.user_id == clinic["portal"].id))
    assert notice.kind == "file_restore" and notice.link == archived_url
    assert notice.patient_id == clinic["patient"].id
    assert [m["To"] for m in _emails(outbox_dir)] == [clinic["portal"].email]
    assert portal.get(f"/portal/documents/{version.attachment_id}/download").status_code == 302  # presigned
    # Staff see it on the patient's documents.
    section = signed_in(app, clinic["doctor"]).get(f"/care/documents/patients/{clinic['patient'].id}")
    assert _file_url(version, "view") in section.get_data(as_text=True)  # opens while the copy lasts


def test_another_patients_or_a_hidden_document_is_not_found(app, clinic, local_slow):
    theirs = _document(clinic, "other_patient", name="theirs.pdf")
    hidden = _document(clinic, name="clinic-letter.pdf", visible_to_patient=False)
    record_file = _record_file(clinic)
    portal = signed_in(app, clinic["portal"])
    for attachment_id in (theirs.attachment_id, hidden.attachment_id, record_file.attachment_id, 999_999):
        url = f"/portal/documents/{attachment_id}/archived"
        assert portal.get(url).status_code == 404
        assert portal.post(url, data={"tier": "Standard"}).status_code == 404
    assert signed_in(app, clinic["doctor"]).get("/portal/documents/1/archived").status_code == 403
    assert _restores(theirs) == _restores(hidden) == []


def test_staff_see_a_patients_request_on_the_documents_section(app, clinic, local_slow):
    version = _document(clinic, name="letter.pdf")
    signed_in(app, clinic["portal"]).post(
        f"/portal/documents/{version.attachment_id}/archived", data={"tier": "Standard"}
    )
    doctor = signed_in(app, clinic["doctor"])
    section = doctor.get(f"/care/documents/patients/{clinic['patient'].id}").get_data(as_text=True)
    assert "Being retrieved" in section and _archived_url(version) in section
    page = doctor.get(_archived_url(version)).get_data(as_text=True)
    assert f"asked by {clinic['patient'].full_name}" in page


# --- the admins' list ---------------------------------------------------------------------------------------


def test_admins_list_the_clinics_restores(app, clinic, other_clinic, local_slow):
    version = _record_file(clinic)
    signed_in(app, clinic["doctor"]).post(_archived_url(version), data={"tier": "Standard"})
    admin = signed_in(app, clinic["admin"])
    text = admin.get("/admin/storage/restores").get_data(as_text=True)
    assert "scan.pdf" in text and "Dr. Ada Quinn" in text and "Being retrieved" in text
    assert (
        signed_in(app, other_clinic["admin"])
        .get("/admin/storage/restores")
        .get_data(as_text=True)
        .count("scan.pdf")
        == 0
    )
    assert signed_in(app, clinic["doctor"]).get("/admin/storage/restores").status_code == 403


# --- a share link with an archived file ---------------------------------------------------------------------


def _provider(app, share):
    """A provider's browser admitted to the share (no passcode, no emailed code)."""
    browser = app.test_client()
    url = _link(share)
    browser.post(url, data={})
    browser.get(f"{url}/check")
    assert browser.get(f"{url}/summary").status_code == 200
    return browser, url


def test_a_share_with_an_archived_file_shows_being_retrieved_and_the_rest_works(app, clinic, local_slow):
    archived = _record_file(clinic, name="old-scan.pdf")
    readable = _record_file(clinic, name="new-scan.pdf", storage_class="STANDARD")
    share = make_share(clinic["patient"], scope=SCOPE_ALL, allow_download=True)
    browser, url = _provider(app, share)
    files_tab = browser.get(f"{url}/files")
    assert files_tab.status_code == 200
    text = files_tab.get_data(as_text=True)
    assert "Being retrieved" in text and "should be ready around" in text
    # The recipient chose nothing: a Standard restore on the clinic's behalf, audited as the share.
    [restore] = _restores(archived)
    assert (restore.tier, restore.via, restore.share_id, restore.requested_by_id) == (
        "Standard", VIA_SHARE, share.id, None,
    )  # fmt: skip
    [asked] = _events("file.restore_requested")
    assert asked.actor_role == "provider" and asked.actor_share_link_id == share.id
    # The record's clinician is told in the app that it was asked for.
    [notice] = db.session.scalars(select(Notification).where(Notification.user_id == clinic["doctor"].id))
    assert "share link's recipient opened the archived file old-scan.pdf" in notice.text
    # Its page says the same, its preview and its download do not fail; the other file works.
    page = browser.get(f"{url}/files/{archived.attachment_id}")
    assert page.status_code == 200 and "Being retrieved" in page.get_data(as_text=True)
    assert browser.get(f"{url}/files/{archived.attachment_id}/pages/1.png").status_code == 404
    download = browser.get(f"{url}/files/{archived.attachment_id}/download")
    assert download.status_code == 409 and "This file is being retrieved" in download.get_data(as_text=True)
    assert browser.get(f"{url}/files/{readable.attachment_id}/download").data == PDF
    assert browser.get(f"{url}/summary").status_code == 200
    # Opening it again starts nothing more.
    browser.get(f"{url}/files")
    assert len(_restores(archived)) == 1
    # Staff see who asked.
    staff_page = signed_in(app, clinic["doctor"]).get(_archived_url(archived)).get_data(as_text=True)
    assert f"through the share link for {share.recipient_name}" in staff_page


def test_on_s3_the_shared_file_opens_once_retrieved(app, clinic, s3):
    archived = _record_file(clinic, name="old-scan.pdf")
    share = make_share(clinic["patient"], scope=SCOPE_ALL, allow_download=True)
    browser, url = _provider(app, share)
    browser.get(f"{url}/files")  # moto restores at once: ready before the page is drawn
    [restore] = _restores(archived)
    assert restore.status == READY
    # No one to tell: the recipient has no account, and the clinic was told when it was asked.
    assert (
        db.session.scalar(select(func.count()).select_from(Job).where(Job.kind == "storage.restore_email"))
        == 0
    )
    text = browser.get(f"{url}/files/{archived.attachment_id}").get_data(as_text=True)
    assert "Being retrieved" not in text
    assert browser.get(f"{url}/files/{archived.attachment_id}/download").data == PDF


def test_the_patients_preview_of_a_share_names_the_archived_file_and_starts_nothing(app, clinic, local_slow):
    _record_file(clinic, name="old-scan.pdf")
    portal = signed_in(app, clinic["portal"])
    form = {
        "recipients-0-name": "Dr. Ana Ruiz",
        "recipients-0-email": "ana.ruiz@hospital.example.com",
        "scope": "all",
        "days": "30",
        "preview": "1",
    }
    answer = portal.post("/portal/shares/new", data=form)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "old-scan.pdf" in text and "it is retrieved when the recipient opens the share" in text
    assert db.session.scalar(select(func.count()).select_from(FileRestore)) == 0


def test_a_finalized_record_in_another_clinic_is_not_reached_through_a_share(
    app, clinic, other_clinic, local_slow
):
    theirs = stored_file(
        tenant_id=other_clinic["tenant"].id,
        patient_id=other_clinic["patient"].id,
        record_id=record_of(other_clinic["tenant"], other_clinic["patient"], other_clinic["doctor"]).id,
    )
    share = make_share(clinic["patient"], scope=SCOPE_ALL)
    browser, url = _provider(app, share)
    assert browser.get(f"{url}/files/{theirs.attachment_id}").status_code == 404
    assert _restores(theirs) == []


# --- exports with archived files ----------------------------------------------------------------------------


def _zip_of(job_id: str) -> zipfile.ZipFile:
    from flask import current_app

    from healthcrm.files.storage import get_storage

    job = db.session.get(Job, job_id)
    assert job.status == "finished", job.error
    with get_storage(current_app).open_stream(job.result["key"]) as stored:
        return zipfile.ZipFile(io.BytesIO(stored.read()))


def test_the_patients_record_export_leaves_an_archived_file_out_and_says_so(app, clinic, local_now):
    from healthcrm.patient_export.services import start_export

    _document(clinic, name="archived-letter.pdf")
    _document(clinic, name="fresh-letter.pdf", storage_class="STANDARD")
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["doctor"].id, role="doctor")
    archive = _zip_of(start_export(actor, clinic["patient"].id))
    names = archive.namelist()
    assert any(name.endswith("fresh-letter.pdf") for name in names)
    assert not any(name.endswith("archived-letter.pdf") for name in names)
    readme = archive.read("README.txt").decode()
    assert "1 file(s)" in readme and "in the clinic's archive" in readme and "archived-letter.pdf" in readme


def test_the_clinic_export_names_the_archived_objects_it_could_not_read(app, clinic, local_now):
    from healthcrm.tenant_export.services import start_export

    archived = _record_file(clinic, name="archived.pdf")
    fresh = _record_file(clinic, name="fresh.pdf", storage_class="STANDARD")
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["admin"].id, role="admin")
    archive = _zip_of(start_export(actor))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["not_included"]["archived_files"] == [archived.storage_key]
    assert f"files/{fresh.storage_key}" in manifest["members"]
    assert f"files/{archived.storage_key}" not in manifest["members"]


# --- the demo -----------------------------------------------------------------------------------------------


def test_the_demo_has_archived_files_to_try_the_restore_flow(app, local_now):
    from healthcrm.demo.data import seed_demo
    from tests.factories import login

    seed_demo("demo-password-1")
    archived = db.session.scalars(
        select(AttachmentVersion)
        .where(AttachmentVersion.storage_class == "GLACIER", ~AttachmentVersion.storage_key.endswith(".gz"))
        .execution_options(all_tenants=True)
    ).all()
    # A letter and a visit's report in each demo clinic (the dashboard's aged files, healthcrm/demo/
    # storage_cost.py, are compressed and archived too; they are not this test's).
    assert len(archived) == 4
    patient = app.test_client()
    assert login(patient, "patient@riverside.example", "demo-password-1").status_code == 303
    listing = patient.get("/portal/documents").get_data(as_text=True)
    assert "Letter after your visit last year.pdf" in listing and "Get it back" in listing
    from healthcrm.accounts.models import Tenant

    riverside = db.session.scalar(select(Tenant.id).where(Tenant.slug == "riverside"))
    letter = next(v for v in archived if v.tenant_id == riverside and v.original_name.startswith("Letter"))
    url = f"/portal/documents/{letter.attachment_id}/archived"
    assert "This file is archived" in patient.get(url).get_data(as_text=True)
    assert patient.post(url, data={"tier": "Standard"}).status_code == 303
    assert _restores(letter)[0].status == READY  # the folder restores at once here
    assert patient.get(f"/portal/documents/{letter.attachment_id}/view").status_code == 200


def test_a_zip_of_files_leaves_the_archived_one_out_and_versions_of_it_say_why(app, clinic, local_now):
    from healthcrm.files import services

    archived = _record_file(clinic, name="archived.pdf")
    fresh = _record_file(clinic, name="fresh.pdf", storage_class="STANDARD")
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["doctor"].id, role="doctor")
    job_id = services.start_zip(actor, clinic["record"].id, [archived.attachment_id, fresh.attachment_id])
    archive = _zip_of(job_id)
    assert "fresh.pdf" in archive.namelist() and "archived.pdf" not in archive.namelist()
    assert (
        "In the archive (retrieve them from their pages first):\narchived.pdf"
        in archive.read("NOT-INCLUDED.txt").decode()
    )
    # Comparing two texts, one archived, sends the person to the archived one's page.
    notes = _record_file(clinic, name="notes.txt", data=b"old\n", kind="text", content_type="text/plain")
    doctor = signed_in(app, clinic["doctor"])
    answer = doctor.get(f"/files/{notes.attachment_id}/compare?left={notes.id}&right={notes.id}")
    assert answer.status_code == 303 and answer.headers["Location"].endswith(_archived_url(notes))
