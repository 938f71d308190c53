"""An outside provider opens a share link in a real browser: on a phone, through the passcode and the code
emailed to them, to the summary with MELD 3.0; then the tabs (htmx, with the address following), the lab
charts, the files' watermarked previews, the PDF export and the print view on a desktop. Screenshots of
each step land in test-artifacts/screenshots/provider-*.png for people to look at."""

from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from healthcrm.accounts.secrets import hash_password
from healthcrm.extensions import db
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_portal_user, make_tenant, make_user
from tests.files import samples
from tests.sharing.factories import make_share, make_shared_patient
from tests.sharing.test_provider import _attach, _finalized, _latest_code, _link

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
PASSCODE = "blue-heron-42"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _shoot(page, name: str, too_wide: list[str]) -> None:
    width = page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / f"provider-{name}-{width}.png"), full_page=True)
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"{name} at {width} px is {overflow} px wider than the screen")


def _wait_for_images(page, selector: str) -> None:
    """Lazy images load once near the screen: bring each there and wait until it has decoded."""
    images = page.locator(selector)
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=images.nth(index).element_handle()
        )
    page.evaluate("window.scrollTo(0, 0)")


def test_a_provider_opens_a_share_with_passcode_and_emailed_code_on_a_phone(
    new_context, live_server, console, outbox_dir, drain_jobs
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Ana Ruiz")
    patient = make_shared_patient(tenant, doctor)
    make_portal_user(patient)
    first_visit = _finalized(patient)[0]
    # The clinician showed the notes (and so their addenda) to the patient: a share the patient makes
    # carries them too (records/patient_view.py).
    for record in _finalized(patient):
        record.notes_visible_to_patient = True
    _attach(first_visit, "Liver ultrasound report.pdf", samples.pdf(), "pdf", "application/pdf")
    _attach(first_visit, "Skin photo.jpg", samples.photo((640, 480)), "jpeg", "image/jpeg")
    _attach(first_visit, "CT abdomen.dcm", samples.dicom(), "dicom", "application/dicom")
    share = make_share(
        patient,
        passcode_hash=hash_password(PASSCODE),
        verify_email=True,
        allow_download=True,
        message="Please look at the rising bilirubin before our referral on Friday.",
    )
    db.session.commit()
    link = live_server + _link(share)
    too_wide: list[str] = []

    # On a phone: the landing page, the passcode, the code from the email, the summary.
    page = new_context(viewport=PHONE).new_page()
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Health records shared with you")
    _shoot(page, "landing", too_wide)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Passcode").fill(PASSCODE)
    _shoot(page, "passcode", too_wide)
    page.get_by_role("button", name="Check the passcode").click()
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a code to g…@hospital.example")
    drain_jobs()
    page.get_by_label("Code from the email").fill(_latest_code(outbox_dir, share.recipient_email))
    _shoot(page, "code", too_wide)
    page.get_by_role("button", name="Open the records").click()
    page.wait_for_url(re.compile(r"/summary$"))
    expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    expect(page.locator(".score-name", has_text="MELD 3.0")).to_be_visible()
    expect(page.locator(".share-watermark")).to_be_attached()
    _shoot(page, "summary", too_wide)

    # Tabs swap in place and the address follows; a test's chart opens on demand, drawn after the swap.
    page.get_by_role("link", name="Lab results", exact=True).click()
    page.wait_for_url(re.compile(r"/labs$"))
    page.get_by_role("link", name="Chart of Bilirubin, total").click()
    page.wait_for_url(re.compile(r"/labs\?chart=1975-2$"))
    expect(page.locator("canvas[data-drawn]").first).to_be_attached()
    _shoot(page, "labs", too_wide)
    page.get_by_role("link", name="Records", exact=True).click()
    page.wait_for_url(re.compile(r"/records$"))
    expect(page.get_by_text("Amended after sharing").first).to_be_visible()
    _shoot(page, "records", too_wide)
    page.get_by_role("link", name="Files", exact=True).click()
    page.wait_for_url(re.compile(r"/files$"))
    expect(page.locator(".share-file-preview img")).to_have_count(3)
    _wait_for_images(page, ".share-file-preview img")
    _shoot(page, "files", too_wide)
    page.go_back()
    page.wait_for_url(re.compile(r"/records$"))
    expect(page.get_by_text("Amended after sharing").first).to_be_visible()

    # The same visit on a desktop: every tab, a file page, the PDF export, the print view.
    page.set_viewport_size(DESKTOP)
    for tab in ("summary", "labs", "records", "files", "scores"):
        page.goto(f"{link}/{tab}" + ("?chart=1975-2" if tab == "labs" else ""))
        if tab == "labs":
            expect(page.locator("canvas[data-drawn]").first).to_be_attached()
        if tab == "files":
            _wait_for_images(page, ".share-file-preview img")
        _shoot(page, tab, too_wide)
    page.goto(f"{link}/files")
    page.get_by_role("link", name="Liver ultrasound report.pdf").click()
    expect(page.get_by_role("img", name=re.compile("Page 1 of Liver ultrasound report.pdf"))).to_be_visible()
    _wait_for_images(page, ".share-page img")
    _shoot(page, "file", too_wide)
    page.goto(f"{link}/summary")
    page.get_by_role("button", name="Download PDF").click()
    download_link = page.get_by_role("link", name=re.compile("Download the PDF"))
    expect(download_link).to_be_visible(timeout=90_000)  # a job: a real worker in CI, slower under load
    _shoot(page, "export", too_wide)
    with page.expect_download() as download:
        download_link.click()
    assert download.value.suggested_filename.startswith("shared-records-")
    page.goto(f"{link}/print")
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    expect(page.locator(".share-watermark")).to_be_attached()
    page.emulate_media(media="print")
    page.screenshot(path=str(SCREENSHOTS / "provider-print-as-paper.png"), full_page=True)
    # Printed (to PDF, as the print dialog would): the watermark is on every page.
    printed = PdfReader(io.BytesIO(page.pdf(format="A4")))
    (SCREENSHOTS / "provider-print.pdf").write_bytes(page.pdf(format="A4"))
    assert len(printed.pages) > 2
    for number, printed_page in enumerate(printed.pages, start=1):
        assert f"Shared with {share.recipient_name}" in printed_page.extract_text(), f"page {number}"
    page.emulate_media(media="screen")

    assert not too_wide, "\n".join(too_wide)
    console.assert_clean()
