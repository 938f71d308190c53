"""Issue 5's "done when", as one story in a real browser: a patient on a phone shares two lab-heavy
records with a passcode and email verification; the provider opens the emailed link from the outbox,
enters the code and the passcode, sees the summary with MELD 3.0 and downloads the watermarked PDF; the
patient sees that access in the log and revokes the link; the provider then gets the 404 page."""

from __future__ import annotations

import io
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from tests.browser.conftest import PHONE
from tests.factories import make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_shared_patient
from tests.sharing.test_provider import _latest_code

pytestmark = pytest.mark.browser

PASSCODE = "river-stone-42"
RECIPIENT = "ana.ruiz@hospital.example.com"
LINK_IN_EMAIL = re.compile(r"(https?://\S+/s/[A-Za-z0-9_-]{43})")


def _emailed_link(outbox_dir) -> str:
    for path in sorted(outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        with path.open("rb") as handle:
            message = BytesParser(policy=policy.default).parse(handle)
        if message["To"] == RECIPIENT and "secure link" in message["Subject"]:
            return LINK_IN_EMAIL.search(message.get_body(preferencelist=("plain",)).get_content()).group(1)
    raise AssertionError("no link emailed to the recipient")


def test_share_open_download_see_the_log_and_revoke(
    app, new_context, live_server, sign_in, console, drain_jobs, outbox_dir
):
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor")
    patient = make_shared_patient(tenant, doctor)
    portal = make_portal_user(patient)

    # The patient, on a phone, shares two visits with a passcode and email verification, downloads allowed.
    patient_page = new_context(viewport=PHONE).new_page()
    sign_in(patient_page, portal.email)
    patient_page.get_by_role("link", name="Your shared records").click()
    patient_page.get_by_role("link", name="Share my records").click()
    panel = patient_page.locator("#share-form")
    panel.get_by_label("Name", exact=True).fill("Dr. Ana Ruiz")
    panel.get_by_label("Email", exact=True).fill(RECIPIENT)
    panel.get_by_label("Chosen visits").check()
    for visit in panel.locator("input[name=scope_record_ids]").all()[:2]:
        visit.check()
    panel.get_by_label("Passcode (optional)").fill(PASSCODE)
    panel.get_by_label("Verify the recipient by email").check()
    panel.get_by_label(re.compile("Allow download")).check()
    panel.get_by_role("button", name="Create the link").click()
    expect(panel.get_by_role("heading", name="Your link is ready")).to_be_visible()
    drain_jobs()

    # The provider opens the link from the email, passes the passcode and the emailed code.
    link = _emailed_link(outbox_dir)
    provider = new_context(viewport=PHONE).new_page()
    provider.goto(link)
    provider.get_by_role("button", name="Continue").click()
    provider.get_by_label("Passcode").fill(PASSCODE)
    provider.get_by_role("button", name="Check the passcode").click()
    provider.get_by_role("button", name="Send me a code").click()
    drain_jobs()
    provider.get_by_label("Code from the email").fill(_latest_code(outbox_dir, RECIPIENT))
    provider.get_by_role("button", name="Open the records").click()
    provider.wait_for_url(re.compile(r"/summary$"))
    expect(provider.locator(".score-name", has_text="MELD 3.0")).to_be_visible()

    # The watermarked PDF.
    provider.get_by_role("button", name="Download PDF").click()
    drain_jobs()
    download_link = provider.get_by_role("link", name=re.compile("Download the PDF"))
    expect(download_link).to_be_visible()
    with provider.expect_download() as download:
        download_link.click()
    pdf = PdfReader(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert all("Shared with Dr. Ana Ruiz" in page.extract_text() for page in pdf.pages)

    # The patient sees the access in the log and revokes the link.
    patient_page.goto(f"{live_server}/portal/shares")
    card = patient_page.locator("#shares .share-card").first
    card.locator("summary", has_text="Access log").click()
    expect(card).to_contain_text("Opened the link")
    expect(card).to_contain_text("Exported")
    patient_page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name=re.compile("Revoke")).click()
    expect(card.locator(".badge")).to_have_text("Revoked")

    # The provider's next click: the same page as any unknown address.
    response = provider.goto(f"{link}/summary")
    assert response.status == 404
    console.allow("status of 404")
    console.assert_clean()
