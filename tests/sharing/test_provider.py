"""The provider's side of a share link, `/s/<token>`, as a provider's browser meets it: the landing page,
the passcode and emailed-code steps, the view limit, the tabs and only what the scope covers, file previews
that never carry the file's own bytes unless downloads are allowed, the exports, and the same 404 for every
link that opens nothing."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import time_machine
from flask import current_app
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select

from healthcrm.accounts.secrets import hash_password
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.clock import utc_to_local, utcnow
from healthcrm.extensions import db, limiter
from healthcrm.files import processing
from healthcrm.files.models import SCAN_NOT_SCANNED, Attachment, AttachmentVersion
from healthcrm.files.storage import get_storage, make_key
from healthcrm.jobs.models import Job
from healthcrm.records.models import FINALIZED, MedicalRecord
from healthcrm.sharing import services
from healthcrm.sharing.models import (
    EVENT_DOWNLOAD,
    EVENT_EXPORT,
    EVENT_OPEN,
    EVENT_VIEW,
    SCOPE_RECORDS,
    SCOPE_TYPES,
    Notification,
    ShareEvent,
    ShareLink,
    ShareToken,
)
from tests.factories import make_portal_user, make_tenant, make_user
from tests.files import samples
from tests.sharing.factories import make_share, make_shared_patient

PASSCODE = "blue-heron-42"
# Text of the shared patient's records (tests/sharing/factories.py) that only some scopes may show.
RECORD_TEXTS = ("Fatigue and itching", "Follow-up of liver tests", "Spironolactone", "INR repeated")
ALLERGY_TEXT = "Penicillin"
DRAFT_TEXT = "Draft, never shared"
CODE_IN_EMAIL = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)
# Parts of a page that differ on every answer by design: the request id, the CSP nonce, the CSRF token.
PER_RESPONSE = (
    re.compile(r"reference [0-9a-f]{32}"),
    re.compile(r'nonce="[^"]+"'),
    re.compile(r'<meta name="csrf-token" content="[^"]+">'),
)


# --- a provider's browser -----------------------------------------------------------------------------------


@dataclass
class Provider:
    """One provider's browser on one share link: the test client keeps its cookies, as a browser would."""

    client: FlaskClient
    url: str

    def land(self):
        return self.client.get(self.url)

    def start(self):
        """Press "Continue": answers the checks page (or the shared view when there is nothing to check)."""
        answer = self.client.post(self.url, data={})
        assert answer.status_code == 303, answer.status_code
        return self.client.get(answer.headers["Location"])

    def passcode(self, value: str):
        return self.client.post(f"{self.url}/passcode", data={"passcode": value})

    def send_code(self):
        return self.client.post(f"{self.url}/code/send", data={})

    def code(self, value: str):
        return self.client.post(f"{self.url}/code", data={"code": value})

    def get(self, path: str = "", **kwargs):
        return self.client.get(f"{self.url}{path}", **kwargs)

    def admitted(self) -> bool:
        """Whether the browser can read the share now (the checks page lets it in once they are passed)."""
        self.get("/check")
        return self.get("/summary").status_code == 200


def _link(share: ShareLink) -> str:
    """A working link of the share (what the creator saw once): only its hash is stored."""
    token = services.new_token()
    db.session.add(
        ShareToken(tenant_id=share.tenant_id, share_id=share.id, token_hash=services.token_hash(token))
    )
    db.session.commit()
    return f"/s/{token}"


def _latest_code(outbox_dir: Path, to: str) -> str:
    messages = []
    for path in sorted(outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        with path.open("rb") as handle:
            message = BytesParser(policy=policy.default).parse(handle)
        if message["To"] == to and "code" in message["Subject"]:
            messages.append(message)
    assert messages, f"no code emailed to {to}"
    text = messages[-1].get_body(preferencelist=("plain",)).get_content()
    return CODE_IN_EMAIL.search(text).group(1)


def _events(share: ShareLink, kind: str) -> list[ShareEvent]:
    return list(
        db.session.scalars(
            select(ShareEvent)
            .where(ShareEvent.share_id == share.id, ShareEvent.kind == kind)
            .order_by(ShareEvent.id)
        )
    )


def _same_apart_from_per_response_parts(a: str, b: str) -> bool:
    for pattern in PER_RESPONSE:
        a, b = pattern.sub("", a), pattern.sub("", b)
    return a == b


def _finalized(patient) -> list[MedicalRecord]:
    return list(
        db.session.scalars(
            select(MedicalRecord)
            .where(MedicalRecord.patient_id == patient.id, MedicalRecord.status == FINALIZED)
            .order_by(MedicalRecord.visit_at)
        )
    )


def _attach(record: MedicalRecord, name: str, data: bytes, kind: str, content_type: str) -> Attachment:
    """A checked, clean file on the record, with the previews the preview job makes."""
    storage = get_storage(current_app)
    key = make_key(record.tenant_id, record.id, name)
    stored = storage.put_stream(key, io.BytesIO(data), content_type)
    digest = hashlib.sha256(data).hexdigest()
    attachment = Attachment(
        tenant_id=record.tenant_id, record_id=record.id, patient_id=record.patient_id, filename=name,
        name_key=name.casefold(),
    )  # fmt: skip
    version = AttachmentVersion(
        tenant_id=record.tenant_id, attachment=attachment, number=1, storage_key=key, original_name=name,
        kind=kind, content_type=content_type, size=len(data), stored_size=len(data), sha256=digest,
        stored_sha256=digest, stored_etag=stored.etag, scan_status=SCAN_NOT_SCANNED,
    )  # fmt: skip
    db.session.add_all([attachment, version])
    db.session.flush()
    attachment.current_version_id = version.id
    db.session.commit()
    processing.make_previews(version.id, version.tenant_id)
    return attachment


@pytest.fixture
def clinic(app):
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Ana Ruiz")
    patient = make_shared_patient(tenant, doctor)
    portal = make_portal_user(patient)
    return {"tenant": tenant, "doctor": doctor, "patient": patient, "portal": portal}


@pytest.fixture
def provider(client):
    """A provider's browser for a link: `provider(share)`."""
    return lambda share, browser=None: Provider(browser or client, _link(share))


@pytest.fixture
def browsers(app):
    """More provider browsers (fresh cookies each)."""
    return lambda: app.test_client()


@pytest.fixture
def files(clinic):
    """A PDF, a JPEG, a DICOM study and a text file on the first finalized visit; a PNG on the draft."""
    first = _finalized(clinic["patient"])[0]
    draft = db.session.scalar(
        select(MedicalRecord).where(
            MedicalRecord.patient_id == clinic["patient"].id, MedicalRecord.status != FINALIZED
        )
    )
    originals = {
        "report.pdf": (samples.pdf(), "pdf", "application/pdf"),
        "photo.jpg": (samples.jpeg((120, 80)), "jpeg", "image/jpeg"),
        "ct.dcm": (samples.dicom(), "dicom", "application/dicom"),
        "notes.txt": (samples.text(), "text", "text/plain"),
    }
    shared = {name: (_attach(first, name, *spec), spec[0]) for name, spec in originals.items()}
    hidden = _attach(draft, "draft-scan.png", samples.png(), "png", "image/png")
    return {"shared": shared, "hidden": hidden}


# --- the landing page and the same 404 for every link that opens nothing ------------------------------------


def test_landing_says_what_is_shared_by_whom_and_until_when_without_the_patients_data(clinic, provider):
    share = make_share(clinic["patient"], scope=SCOPE_TYPES, scope_types=["labs", "allergies"])
    page = provider(share).land()
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Lab results, allergies" in text or "Allergies, lab results" in text
    assert f"The patient, through {clinic['tenant'].name}" in text
    assert utc_to_local(share.expires_at, clinic["tenant"].timezone).strftime("%d %b %Y, %H:%M") in text
    assert "Confidential health information" in text
    assert 'type="submit">Continue</button>' in text
    assert clinic["patient"].last_name not in text and ALLERGY_TEXT not in text


def test_a_share_made_by_staff_says_who_made_it_on_the_patients_behalf(clinic, provider):
    share = make_share(clinic["patient"], created_by_staff=True, created_by_id=clinic["doctor"].id)
    text = provider(share).land().get_data(as_text=True)
    assert f"Dr. Ana Ruiz of {clinic['tenant'].name}, on the patient's behalf" in text


def test_unknown_expired_revoked_and_used_up_links_answer_the_same_404_as_any_unknown_page(clinic, client):
    unknown_page = client.get("/no-such-page")
    assert unknown_page.status_code == 404
    expected = unknown_page.get_data(as_text=True)
    links = {
        "unknown": f"/s/{services.new_token()}",
        "expired": _link(make_share(clinic["patient"], expires_at=utcnow() - timedelta(minutes=1))),
        "revoked": _link(make_share(clinic["patient"], revoked_at=utcnow())),
        "used up": _link(make_share(clinic["patient"], max_opens=2, opens=2)),
        "too long": "/s/" + "x" * 120,
    }
    for what, url in links.items():
        for answer in (client.get(url), client.get(f"{url}/summary"), client.get(f"{url}/check")):
            assert answer.status_code == 404, what
            assert _same_apart_from_per_response_parts(answer.get_data(as_text=True), expected), what
        assert client.post(url, data={}).status_code == 404, what


def test_a_link_that_expires_while_it_is_open_stops_answering(clinic, provider):
    share = make_share(clinic["patient"])
    browser = provider(share)
    browser.start()
    assert browser.admitted()
    with time_machine.travel(share.expires_at.replace(tzinfo=UTC) + timedelta(minutes=1), tick=False):
        assert browser.get("/summary").status_code == 404


def test_every_answer_is_kept_out_of_caches_search_engines_and_frames(clinic, provider, files):
    share = make_share(clinic["patient"])
    browser = provider(share)
    pdf = files["shared"]["report.pdf"][0]
    answers = [
        browser.land(),
        browser.start(),
        browser.get("/labs"),
        browser.get(f"/files/{pdf.id}/pages/1.png"),
    ]
    answers.append(browser.get("/no-such-tab"))
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Robots-Tag"] == "noindex, nofollow"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


def test_pages_have_no_inline_scripts_or_styles(clinic, provider):
    share = make_share(clinic["patient"], passcode_hash=hash_password(PASSCODE))
    browser = provider(share)
    pages = [browser.land(), browser.start()]
    browser.passcode(PASSCODE)
    assert browser.admitted()
    pages += [browser.get(f"/{tab}") for tab in ("summary", "labs", "records", "files", "scores")]
    pages.append(browser.get("/print"))
    for page in pages:
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
        for tag in re.findall(r"<script[^>]*>", text):
            assert f'nonce="{nonce}"' in tag and "src=" in tag
        assert " style=" not in text and "hx-on" not in text


def test_the_visit_cookie_is_http_only_same_site_lax_and_only_for_this_link(clinic, provider, app):
    share = make_share(clinic["patient"])
    browser = provider(share)
    answer = browser.client.post(browser.url, data={})
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("hc_share=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and f"Path={browser.url};" in cookie
    assert "Secure" not in cookie  # local development and tests run on http
    app.config["SESSION_COOKIE_SECURE"] = True  # as outside local development
    other = provider(make_share(clinic["patient"]))
    assert "Secure" in other.client.post(other.url, data={}).headers["Set-Cookie"]


# --- passcode and emailed code ------------------------------------------------------------------------------


def test_a_wrong_passcode_is_refused_and_the_right_one_opens_the_share(clinic, provider):
    share = make_share(clinic["patient"], passcode_hash=hash_password(PASSCODE))
    browser = provider(share)
    steps = browser.start()
    assert steps.status_code == 200 and 'name="passcode"' in steps.get_data(as_text=True)
    assert browser.get("/summary").status_code == 303  # not yet: back to the landing page
    wrong = browser.passcode("not-the-passcode")
    assert wrong.status_code == 401
    assert "That passcode is not right. 9 more tries before this link pauses" in wrong.get_data(as_text=True)
    assert not browser.admitted()
    right = browser.passcode(PASSCODE)
    assert right.status_code == 303 and right.headers["Location"].endswith("/check")
    went_in = browser.client.get(right.headers["Location"])
    assert went_in.status_code == 303 and went_in.headers["Location"].endswith("/summary")
    summary = browser.get("/summary")
    assert summary.status_code == 200 and clinic["patient"].full_name in summary.get_data(as_text=True)
    assert len(_events(share, EVENT_OPEN)) == 1


def test_ten_wrong_passcodes_pause_the_link_and_tell_the_patient_and_a_right_one_works_after_15_minutes(
    clinic, provider
):
    share = make_share(clinic["patient"], passcode_hash=hash_password(PASSCODE))
    browser = provider(share)
    browser.start()
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        pages = [browser.passcode(f"guess-{n}") for n in range(10)]
    assert [page.status_code for page in pages] == [401] * 9 + [429]
    assert "1 more try before this link pauses" in pages[8].get_data(as_text=True)
    assert int(pages[9].headers["Retry-After"]) == 15 * 60
    notices = list(
        db.session.scalars(select(Notification).where(Notification.user_id == clinic["portal"].id))
    )
    assert len(notices) == 1 and "paused" in notices[0].text
    # Rate limits are not what this test is about: with Redis they keep Redis's own clock, which
    # time_machine does not move.
    limiter.reset()
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        page = browser.get("/check")
        assert "This link is paused for now" in page.get_data(as_text=True)
        assert 'name="passcode"' not in page.get_data(as_text=True)
        meanwhile = browser.passcode(PASSCODE)  # right, but paused: not accepted
        assert meanwhile.status_code == 429 and "paused" in meanwhile.get_data(as_text=True)
        assert not browser.admitted()
    limiter.reset()
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert browser.passcode(PASSCODE).status_code == 303
        assert browser.admitted()


def test_the_email_code_goes_to_the_recipient_only_works_once_and_expires_after_10_minutes(
    clinic, provider, browsers, outbox_dir, drain_jobs
):
    share = make_share(clinic["patient"], verify_email=True, recipient_email="grace@hospital.example")
    first = provider(share)
    steps = first.start()
    assert "Send me a code" in steps.get_data(as_text=True)
    assert "g…@hospital.example" in steps.get_data(as_text=True)
    sent = first.send_code()
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/check?sent=1")
    drain_jobs()
    code = _latest_code(outbox_dir, "grace@hospital.example")
    assert first.code("000000" if code != "000000" else "111111").status_code == 422
    assert first.code(code).status_code == 303
    assert first.admitted()
    # The same code again, from another browser: used.
    second = Provider(browsers(), first.url)
    second.start()
    assert second.code(code).status_code == 422 and not second.admitted()
    # A new code, 11 minutes later: expired.
    second.send_code()
    drain_jobs()
    late = _latest_code(outbox_dir, "grace@hospital.example")
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11), tick=False):
        assert second.code(late).status_code == 422
        assert not second.admitted()


def test_with_passcode_and_email_the_code_is_only_sent_after_the_passcode(
    clinic, provider, outbox_dir, drain_jobs
):
    share = make_share(clinic["patient"], passcode_hash=hash_password(PASSCODE), verify_email=True)
    browser = provider(share)
    browser.start()
    assert browser.send_code().headers["Location"].endswith("/check")  # nothing sent yet
    drain_jobs()
    assert not list(outbox_dir.glob("*.eml"))
    browser.passcode(PASSCODE)
    assert not browser.admitted()
    browser.send_code()
    drain_jobs()
    assert browser.code(_latest_code(outbox_dir, share.recipient_email)).status_code == 303
    assert browser.admitted()


def test_step_posts_and_random_links_are_rate_limited_per_client(clinic, provider, client):
    share = make_share(clinic["patient"], verify_email=True)
    browser = provider(share)
    browser.start()
    answers = [browser.code(f"{n:06d}").status_code for n in range(11)]
    assert answers == [422] * 10 + [429]
    guesses = [client.get(f"/s/{services.new_token()}").status_code for _ in range(70)]
    assert set(guesses[:55]) == {404} and guesses[-1] == 429


# --- opens --------------------------------------------------------------------------------------------------


def test_a_view_limit_of_two_lets_two_browsers_in_and_the_third_gets_the_404(clinic, provider, browsers):
    share = make_share(clinic["patient"], max_opens=2)
    first = provider(share)
    second, third = Provider(browsers(), first.url), Provider(browsers(), first.url)
    for browser in (first, second):
        browser.start()
        assert browser.admitted()
    assert third.land().status_code == 404
    assert third.client.post(third.url, data={}).status_code == 404
    # Those let in keep reading.
    assert first.get("/labs").status_code == 200 and second.get("/summary").status_code == 200
    db.session.refresh(share)
    assert share.opens == 2 and len(_events(share, EVENT_OPEN)) == 2


def test_revoking_stops_a_provider_who_is_reading(clinic, provider):
    share = make_share(clinic["patient"])
    browser = provider(share)
    browser.start()
    assert browser.admitted()
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["portal"].id, role="patient")
    services.revoke(actor, share.id)
    assert browser.get("/summary").status_code == 404
    assert browser.land().status_code == 404


# --- the shared view ----------------------------------------------------------------------------------------


def test_the_summary_shows_the_patient_labs_with_flags_scores_and_insights_with_their_source(
    clinic, provider
):
    share = make_share(clinic["patient"])
    browser = provider(share)
    browser.start()
    text = browser.get("/summary").get_data(as_text=True)
    patient = clinic["patient"]
    assert patient.full_name in text and "Unspecified cirrhosis of liver" in text and ALLERGY_TEXT in text
    # Child-Pugh needs the encephalopathy grade, which the records do not give: left out of the summary.
    assert "MELD 3.0" in text and "MELD-Na" in text and "Child-Pugh" not in text
    assert "Bilirubin, total" in text and "↑ High" in text
    assert "is above its reference range" in text and "From: Bilirubin, total of" in text
    assert "Blood pressure" in text and "128/82 mmHg" in text


def test_each_tab_is_a_page_and_an_htmx_fragment_and_each_view_is_logged(clinic, provider):
    share = make_share(clinic["patient"])
    browser = provider(share)
    browser.start()
    for tab, heading in (
        ("labs", "Lab results"),
        ("records", "Records"),
        ("files", "Files"),
        ("scores", "Scores"),
    ):
        page = browser.get(f"/{tab}")
        assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
        fragment = browser.get(f"/{tab}", headers={"HX-Request": "true"})
        text = fragment.get_data(as_text=True)
        assert fragment.status_code == 200 and "<html" not in text and 'id="share-panel"' in text
        assert f">{heading}</h2>" in text and "HX-Request" in fragment.headers["Vary"]
        assert 'data-hx-push-url="true"' in text and f'href="{browser.url}/summary"' in text
        assert f"<title>{heading} · {clinic['patient'].full_name} · HealthCRM</title>" in text
    details = [event.detail for event in _events(share, EVENT_VIEW)]
    assert details.count("Lab results") == 2 and details.count("Scores") == 2


def test_the_labs_tab_is_a_flowsheet_newest_first_with_flags_and_a_chart_on_demand(clinic, provider):
    share = make_share(clinic["patient"])
    browser = provider(share)
    browser.start()
    text = browser.get("/labs").get_data(as_text=True)
    assert 'class="lab-sheet-table"' in text and "<canvas" not in text
    alt = text.index('<span class="lab-name">ALT</span>')
    # Newest day first; the flag written beside its colour.
    assert text.index("92 <", alt) < text.index("48<", alt)
    assert "↑H" in text and "↓L" in text and "(high)" in text
    assert (
        f'href="{browser.url}/labs?chart=1742-6#lab-chart-panel" '
        f'data-hx-get="{browser.url}/labs?chart=1742-6"' in text
    )
    chart = browser.get("/labs?chart=1742-6", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="share-panel"' in chart and 'id="lab-series" hidden' in chart and "Trend of ALT" in chart
    liver = browser.get("/labs?panel=liver").get_data(as_text=True)
    assert (
        '<span class="lab-name">ALT</span>' in liver
        and '<span class="lab-name">Creatinine</span>' not in liver
    )
    assert browser.get("/labs?panel=nonsense").status_code == 404


def test_records_show_finalized_visits_with_addenda_marked_and_amended_after_sharing(clinic, provider):
    # Made by staff: a share the patient makes shows addenda only where the notes are visible to the
    # patient (records/patient_view.py, tests/portal/test_records_view.py).
    share = make_share(clinic["patient"], created_by_staff=True)
    browser = provider(share)
    browser.start()
    text = browser.get("/records").get_data(as_text=True)
    assert "Fatigue and itching" in text and "Spironolactone" in text and "INR repeated" in text
    assert "Amended after sharing" in text and "Added after sharing" in text
    assert DRAFT_TEXT not in text


def test_a_labs_only_share_shows_no_record_text_on_any_tab_fragment_or_print_view(clinic, provider, files):
    share = make_share(clinic["patient"], scope=SCOPE_TYPES, scope_types=["labs"])
    browser = provider(share)
    browser.start()
    for tab in ("records", "files"):
        assert browser.get(f"/{tab}").status_code == 404
        assert browser.get(f"/{tab}", headers={"HX-Request": "true"}).status_code == 404
    pages = [browser.get("/print")]
    for tab in ("summary", "labs", "scores"):
        pages += [browser.get(f"/{tab}"), browser.get(f"/{tab}", headers={"HX-Request": "true"})]
    for page in pages:
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        for secret in (*RECORD_TEXTS, ALLERGY_TEXT, DRAFT_TEXT, "Unspecified cirrhosis", "report.pdf"):
            assert secret not in text
    assert "MELD 3.0" in pages[0].get_data(as_text=True)
    for attachment, _data in files["shared"].values():
        assert browser.get(f"/files/{attachment.id}").status_code == 404
        assert browser.get(f"/files/{attachment.id}/pages/1.png").status_code == 404


def test_a_prescriptions_only_share_shows_the_drugs_but_not_the_visit_notes(clinic, provider):
    share = make_share(clinic["patient"], scope=SCOPE_TYPES, scope_types=["prescriptions"])
    browser = provider(share)
    browser.start()
    text = browser.get("/records").get_data(as_text=True)
    assert "Spironolactone" in text
    for secret in (
        "Fatigue and itching",
        "Follow-up of liver tests",
        "INR repeated",
        "Unspecified cirrhosis",
    ):
        assert secret not in text


def test_the_print_view_has_every_section_and_a_print_button(clinic, provider):
    share = make_share(clinic["patient"])
    browser = provider(share)
    browser.start()
    text = browser.get("/print").get_data(as_text=True)
    for section in ("summary", "labs", "records", "files", "scores"):
        assert f'id="{section}"' in text
    assert "data-print" in text and "share-watermark" in text
    assert f"share #{share.id}" in text and share.recipient_name in text


# --- files --------------------------------------------------------------------------------------------------


def _file_urls(browser: Provider, attachments) -> set[str]:
    """Every URL under the link that the files tab and the file pages point at, plus the download routes."""
    urls = set()
    for page in [browser.get("/files"), *(browser.get(f"/files/{a.id}") for a in attachments)]:
        urls |= set(re.findall(r'(?:href|src)="(/s/[^"]+)"', page.get_data(as_text=True)))
    for attachment in attachments:
        urls |= {
            f"{browser.url}/files/{attachment.id}/download",
            f"{browser.url}/files/{attachment.id}/pages/1.png",
        }
    urls |= {f"{browser.url}/export/labs.csv"}
    return {url.replace("&amp;", "&") for url in urls}


def test_a_no_download_share_never_answers_with_a_files_own_bytes(clinic, provider, files):
    share = make_share(clinic["patient"], allow_download=False)
    browser = provider(share)
    browser.start()
    attachments = [attachment for attachment, _data in files["shared"].values()]
    originals = [data for _attachment, data in files["shared"].values()]
    urls = _file_urls(browser, attachments)
    assert any("/pages/" in url for url in urls)
    previews = 0
    for url in sorted(urls):
        answer = browser.client.get(url)
        body = answer.get_data()
        assert "attachment" not in answer.headers.get("Content-Disposition", ""), url
        for original in originals:
            assert body != original and original not in body, url
        if "/pages/" in url and answer.status_code == 200:
            previews += 1
            assert answer.headers["Content-Type"] == "image/png"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert body.startswith(b"\x89PNG")
        if url.endswith(("/download", ".csv")):
            assert answer.status_code == 404, url
    assert previews >= 3  # the PDF page, the photo, the DICOM frame
    assert browser.client.post(f"{browser.url}/export/pdf", data={}).status_code == 404
    assert "Download" not in browser.get("/files").get_data(as_text=True).replace("Download PDF", "")
    db.session.refresh(share)
    assert share.downloads == 0


def test_a_download_share_sends_the_files_own_bytes_counted_and_up_to_its_limit(clinic, provider, files):
    share = make_share(clinic["patient"], allow_download=True, max_downloads=2)
    browser = provider(share)
    browser.start()
    pdf, original = files["shared"]["report.pdf"]
    answer = browser.get(f"/files/{pdf.id}/download")
    assert answer.status_code == 200 and answer.get_data() == original
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    text_file, text_bytes = files["shared"]["notes.txt"]
    assert browser.get(f"/files/{text_file.id}/download").get_data() == text_bytes
    used_up = browser.get(f"/files/{pdf.id}/download")
    assert used_up.status_code == 403 and "downloads are used up" in used_up.get_data(as_text=True)
    db.session.refresh(share)
    assert share.downloads == 2
    assert [event.detail for event in _events(share, EVENT_DOWNLOAD)] == ["report.pdf", "notes.txt"]


def test_a_file_whose_stored_bytes_changed_is_not_sent(clinic, provider, files):
    share = make_share(clinic["patient"], allow_download=True)
    browser = provider(share)
    browser.start()
    pdf, _original = files["shared"]["report.pdf"]
    version = pdf.current_version
    get_storage(current_app).put_stream(
        version.storage_key, io.BytesIO(b"%PDF-1.4 tampered"), "application/pdf"
    )
    answer = browser.get(f"/files/{pdf.id}/download")
    assert answer.status_code == 409 and b"tampered" not in answer.get_data()
    assert browser.get(f"/files/{pdf.id}/pages/1.png").status_code == 404
    db.session.refresh(share)
    assert share.downloads == 0


def test_files_outside_the_share_answer_404_on_every_path(clinic, provider, files):
    share = make_share(clinic["patient"], allow_download=True)
    browser = provider(share)
    browser.start()
    hidden = files["hidden"]  # on a draft record
    other_tenant = make_tenant()
    other_patient = make_shared_patient(other_tenant, make_user(other_tenant, "doctor"))
    theirs = _attach(_finalized(other_patient)[0], "theirs.png", samples.png(), "png", "image/png")
    for attachment in (hidden, theirs):
        for path in ("", "/download", "/pages/1.png"):
            assert browser.get(f"/files/{attachment.id}{path}").status_code == 404
    assert "draft-scan.png" not in browser.get("/files").get_data(as_text=True)


def test_file_bytes_need_an_admitted_visit(clinic, provider, browsers, files):
    share = make_share(clinic["patient"], allow_download=True, passcode_hash=hash_password(PASSCODE))
    browser = provider(share)
    browser.start()  # passcode not given
    pdf, _original = files["shared"]["report.pdf"]
    for path in (f"/files/{pdf.id}/download", f"/files/{pdf.id}/pages/1.png", "/export/labs.csv"):
        assert browser.get(path).status_code == 404
        assert Provider(browsers(), browser.url).get(path).status_code == 404


# --- exports ------------------------------------------------------------------------------------------------


def test_the_pdf_export_is_a_job_whose_pdf_carries_the_watermark_and_counts_as_an_export(
    clinic, provider, browsers, drain_jobs
):
    share = make_share(clinic["patient"], allow_download=True)
    browser = provider(share)
    browser.start()
    started = browser.client.post(f"{browser.url}/export/pdf", data={}, headers={"HX-Request": "true"})
    assert started.status_code == 200 and "PDF of the shared records" in started.get_data(as_text=True)
    drain_jobs()
    job = db.session.scalar(select(Job).where(Job.kind == "sharing.export_pdf"))
    progress = browser.get(f"/export/pdf/{job.id}", headers={"HX-Request": "true"})
    assert progress.status_code == 286 and "Download the PDF" in progress.get_data(as_text=True)
    # Another browser of the same share cannot take this visit's export.
    other = Provider(browsers(), browser.url)
    other.start()
    assert other.get(f"/export/pdf/{job.id}/download").status_code == 404
    pdf = browser.get(f"/export/pdf/{job.id}/download")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    reader = PdfReader(io.BytesIO(pdf.get_data()))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert f"Shared with {share.recipient_name}" in text and f"share #{share.id}" in text
    assert "MELD 3.0" in text
    db.session.refresh(share)
    assert share.downloads == 1 and [e.detail for e in _events(share, EVENT_EXPORT)] == ["PDF"]


def test_with_no_downloads_left_the_export_button_says_so_in_place(clinic, provider):
    share = make_share(clinic["patient"], allow_download=True, max_downloads=1)
    browser = provider(share)
    browser.start()
    assert browser.get("/export/labs.csv").status_code == 200
    in_place = browser.client.post(f"{browser.url}/export/pdf", data={}, headers={"HX-Request": "true"})
    assert in_place.status_code == 200 and "downloads are used up" in in_place.get_data(as_text=True)
    assert "<html" not in in_place.get_data(as_text=True)
    assert browser.client.post(f"{browser.url}/export/pdf", data={}).status_code == 403
    assert db.session.scalar(select(Job).where(Job.kind == "sharing.export_pdf")) is None


def test_the_labs_csv_is_counted_as_an_export(clinic, provider):
    share = make_share(clinic["patient"], allow_download=True)
    browser = provider(share)
    browser.start()
    answer = browser.get("/export/labs.csv")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert "Bilirubin, total" in answer.get_data(as_text=True)
    db.session.refresh(share)
    assert share.downloads == 1 and [e.detail for e in _events(share, EVENT_EXPORT)] == ["labs CSV"]


# --- one clinic's link, another clinic's data ---------------------------------------------------------------


def test_a_share_of_one_clinic_never_shows_another_clinics_data(clinic, provider, drain_jobs):
    other_tenant = make_tenant("Elsewhere Clinic")
    other_doctor = make_user(other_tenant, "doctor")
    other_patient = make_shared_patient(other_tenant, other_doctor)
    other_records = _finalized(other_patient)
    for record in other_records:
        record.chief_complaint = "Elsewhere complaint"
    db.session.commit()
    theirs = _attach(other_records[0], "elsewhere.png", samples.png(), "png", "image/png")
    # A share by records naming the other clinic's record ids, and one of everything.
    by_ids = make_share(
        clinic["patient"], scope=SCOPE_RECORDS, scope_record_ids=[r.id for r in other_records]
    )
    everything = make_share(clinic["patient"], allow_download=True)
    for share in (by_ids, everything):
        browser = provider(share)
        browser.start()
        for tab in ("summary", "labs", "records", "files", "scores"):
            text = browser.get(f"/{tab}").get_data(as_text=True)
            assert other_patient.last_name not in text and "Elsewhere" not in text
        assert browser.get(f"/files/{theirs.id}/pages/1.png").status_code == 404
    # The other clinic's export job is not this share's.
    job_id = "not-" + "0" * 32
    assert browser.get(f"/export/pdf/{job_id}").status_code == 404
    db.session.add(
        Job(
            id="b" * 36,
            tenant_id=other_tenant.id,
            kind="sharing.export_pdf",
            label="x",
            args=[everything.id, 1],
            status="finished",  # a stand-in: no worker is to run it
        )
    )
    db.session.commit()
    assert browser.get(f"/export/pdf/{'b' * 36}/download").status_code == 404


def test_every_share_event_carries_its_requests_id(clinic, provider):
    share = make_share(clinic["patient"], passcode_hash=hash_password(PASSCODE))
    browser = provider(share)
    browser.start()
    wrong = browser.passcode("not-the-passcode")
    right = browser.passcode(PASSCODE)
    events = {
        event.action: event.request_id
        for event in db.session.scalars(select(AuditEvent).where(AuditEvent.actor_share_link_id == share.id))
    }
    assert events["share.passcode_failed"] == wrong.headers["X-Request-ID"]
    assert events["share.passcode_ok"] == right.headers["X-Request-ID"]
    assert all(events.values()), events


def test_the_provider_side_imports_no_other_areas_views():
    import ast

    from healthcrm.sharing import provider_views

    tree = ast.parse(Path(provider_views.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "files.responses" in imported and not {
        m for m in imported if m.endswith("views") and "jobs" not in m
    }


def test_every_counted_download_is_one_sequence_with_the_same_headers(clinic, provider, files, drain_jobs):
    import ast

    from healthcrm.sharing import provider_views

    # Counted, then sent with the bytes headers, in one function that every download route calls.
    tree = ast.parse(Path(provider_views.__file__).read_text())
    counting = {
        function.name
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Attribute) and node.attr == "count_download"
    }
    assert counting == {"_counted_download"}

    share = make_share(clinic["patient"], allow_download=True, max_downloads=3)
    browser = provider(share)
    browser.start()
    browser.client.post(f"{browser.url}/export/pdf", data={})
    drain_jobs()
    job = db.session.scalar(select(Job).where(Job.kind == "sharing.export_pdf"))
    pdf, _original = files["shared"]["report.pdf"]
    paths = (f"/files/{pdf.id}/download", "/export/labs.csv", f"/export/pdf/{job.id}/download")
    for path in paths:
        answer = browser.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["Content-Disposition"].startswith("attachment;"), path
        assert answer.headers["Content-Security-Policy"] == provider_views.BYTES_CSP, path
        assert answer.headers["X-Frame-Options"] == "DENY", path
        assert int(answer.headers["Content-Length"]) == len(answer.get_data()), path
    for path in paths:
        used_up = browser.get(path)
        assert used_up.status_code == 403 and "downloads are used up" in used_up.get_data(as_text=True)
    db.session.refresh(share)
    assert share.downloads == 3
