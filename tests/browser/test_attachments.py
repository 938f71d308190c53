"""A doctor attaches files to a draft record in a real browser: chooses several at once, sees them listed
(a thumbnail for the image, a × to take one back), uploads them three at a time with a progress bar each
(the large one in parts), reads which were refused and why, and finds the others in the record's files.
An interrupted large upload resumes where it stopped when the same file is chosen again, and a cancelled
one leaves nothing behind.

Screenshots at desktop and phone widths land in test-artifacts/screenshots/attachments-*.png.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.files.models import Attachment, UploadSession
from healthcrm.records.models import MedicalRecord
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.conftest import REDIS_URL
from tests.factories import make_patient, make_tenant, make_user
from tests.files import samples

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
BIG_BYTES = 9 * 1024 * 1024  # over the 5 MiB multipart threshold: parts of 8 MiB and 1 MiB
UPLOAD_TIMEOUT_MS = 60_000


@pytest.fixture
def draft(app) -> dict:
    tenant = make_tenant("Riverside Family Clinic")
    doctor = make_user(
        tenant, "doctor", full_name="Dr. Sam Okafor", email=f"sam@clinic{tenant.id}.example.com"
    )
    patient = make_patient(tenant, first_name="Elena", last_name="Marsh")
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=datetime(2026, 11, 20, 9, 30),
        chief_complaint="Jaundice work-up",
    )
    db.session.add(record)
    db.session.commit()
    return {"doctor": doctor, "record": record}


def _big_text(size: int) -> bytes:
    lines = b"".join(b"%07d,ALT,%d,U/L\n" % (n, 20 + n % 90) for n in range(size // 16 + 1))
    return lines[:size]


def _files(folder: Path) -> dict[str, Path]:
    contents = {
        "xray.png": samples.png((320, 240)),
        "report.pdf": samples.pdf(),
        "labs.csv": samples.csv(),
        "letter.txt": b"Dear colleague,\nPlease see the attached results.\n",
        "fake.pdf": samples.html(),
        "ultrasound-export.txt": _big_text(BIG_BYTES),
    }
    paths = {}
    for name, data in contents.items():
        path = folder / name
        path.write_bytes(data)
        paths[name] = path
    return paths


def _shoot(page, name: str, width: int, too_wide: list[str], *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"attachments-{name}-{width}.png"), full_page=full_page)
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"attachments-{name} at {width} px is {overflow} px wider than the screen")


def _row(uploader, name: str):
    return uploader.locator(".upload-item").filter(has=uploader.page.get_by_text(name, exact=True))


def test_doctor_uploads_several_files_and_finds_them_on_the_record(
    page, live_server, draft, sign_in, console, tmp_path, drain_jobs
):
    console.allow("status of 422")  # the browser logs the refused upload's answer
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide: list[str] = []
    paths = _files(tmp_path)
    extra = tmp_path / "not-this-one.txt"
    extra.write_bytes(b"chosen by mistake\n")
    record = draft["record"]

    sign_in(page, draft["doctor"].email)
    page.goto(f"{live_server}/records/{record.id}")
    files = page.get_by_role("region", name="Files")
    expect(files).to_contain_text("No files yet.")
    uploader = files.locator("[data-uploader]")

    # Several files at once through the file button; each is listed before anything is sent.
    chooser = files.get_by_label(re.compile("choose files"))
    # The file button is a real file input in the zone's label: it takes the focus, and the zone shows it.
    chooser.focus()
    expect(chooser).to_be_focused()
    assert files.locator(".dropzone").evaluate("zone => getComputedStyle(zone).outlineStyle") == "solid"
    chooser.set_input_files([*paths.values(), extra])
    items = uploader.locator(".upload-item")
    expect(items).to_have_count(7)
    expect(_row(uploader, "xray.png").locator(".upload-thumb img")).to_have_attribute(
        "src", re.compile("^blob:")
    )
    expect(_row(uploader, "ultrasound-export.txt")).to_contain_text("9 MB")
    _row(uploader, "not-this-one.txt").get_by_role("button", name="Remove not-this-one.txt").click()
    expect(items).to_have_count(6)
    files.scroll_into_view_if_needed()
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "chosen", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)

    uploader.get_by_role("button", name="Upload", exact=True).click()
    summary = uploader.locator("[data-upload-summary]")
    expect(summary).to_have_attribute("data-done", "true", timeout=UPLOAD_TIMEOUT_MS)
    expect(summary).to_contain_text("5 uploaded, 1 rejected: fake.pdf: ")
    expect(summary).to_contain_text("HTML")
    expect(summary).to_have_attribute("aria-live", "polite")
    for name in ("xray.png", "report.pdf", "labs.csv", "letter.txt", "ultrasound-export.txt"):
        row = _row(uploader, name)
        expect(row).to_have_attribute("data-state", "done")
        expect(row.locator(".upload-status")).to_have_text("Uploaded")
        expect(row.locator("progress")).to_have_attribute("value", "100")
        expect(row.locator(".upload-percent")).to_have_text("100%")
    rejected = _row(uploader, "fake.pdf")
    expect(rejected).to_have_attribute("data-state", "rejected")
    expect(rejected.locator(".upload-status")).to_contain_text("Rejected: fake.pdf: ")

    # The files list was loaded again by htmx: five files, the picture with its thumbnail.
    table = files.locator("table.file-table")
    for name in ("xray.png", "report.pdf", "labs.csv", "letter.txt", "ultrasound-export.txt"):
        expect(table.get_by_role("link", name=name)).to_be_visible()
    expect(table).not_to_contain_text("fake.pdf")
    expect(table.locator("tbody tr")).to_have_count(5)
    if REDIS_URL:
        # A real worker makes the thumbnail while (or after) the uploader reloads the list, which then shows
        # the kind instead: once the jobs are done, reload the list as the uploader does.
        drain_jobs()
        page.evaluate(
            "() => { const root = document.querySelector('[data-refresh-url]');"
            " htmx.ajax('GET', root.dataset.refreshUrl,"
            " {target: root.dataset.refreshTarget, swap: 'outerHTML'}); }"
        )
        table = files.locator("table.file-table")
    expect(table.locator("tr", has_text="xray.png").locator(".file-thumb img")).to_be_visible()
    expect(table.locator("tr", has_text="labs.csv")).to_contain_text("Not scanned")
    expect(table.locator("tr", has_text="ultrasound-export.txt")).to_contain_text("9 MB")
    big = db.session.scalar(select(Attachment).where(Attachment.filename == "ultrasound-export.txt"))
    assert big.current_version.size == BIG_BYTES
    session = db.session.scalar(
        select(UploadSession).where(UploadSession.filename == "ultrasound-export.txt")
    )
    assert session.multipart_id and session.status == "done"
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        files.scroll_into_view_if_needed()
        _shoot(page, "uploaded", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)

    # The zip of two chosen files, with its progress bar, ends with a download link.
    table.get_by_label("Choose xray.png").check()
    table.get_by_label("Choose letter.txt").check()
    files.get_by_role("button", name="Download as zip").click()
    expect(files.locator(".zip-progress")).to_contain_text("Ready")
    with page.expect_download() as download:
        files.get_by_role("link", name=re.compile(r"Download record-\d+-files\.zip")).click()
    assert download.value.suggested_filename == f"record-{record.id}-files.zip"

    # The attachment pages: the picture, and the text shown as text.
    table.get_by_role("link", name="letter.txt").click()
    expect(page.locator("pre.file-text")).to_contain_text("Please see the attached results.")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "text-page", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)
    page.go_back()
    page.get_by_role("region", name="Files").get_by_role("link", name="report.pdf").click()
    # Chromium's PDF viewer opens inside the frame (the answer's CSP sandbox does not stop it).
    expect(page.locator("iframe.file-preview-frame")).to_be_visible()
    for _ in range(100):
        if any(frame.url.startswith("chrome-extension://") for frame in page.frames):
            break
        page.wait_for_timeout(50)
    assert not any(frame.url.startswith("chrome-error://") for frame in page.frames), [
        f.url for f in page.frames
    ]
    page.wait_for_timeout(500)
    _shoot(page, "pdf-page", DESKTOP["width"], too_wide)
    page.go_back()
    page.get_by_role("region", name="Files").get_by_role("link", name="xray.png").click()
    expect(page.locator("img.file-preview-image")).to_be_visible()
    page.wait_for_function("() => document.querySelector('img.file-preview-image').complete")
    assert page.locator("img.file-preview-image").evaluate("img => img.naturalWidth") == 320
    _shoot(page, "image-page", DESKTOP["width"], too_wide)

    assert not too_wide, too_wide
    console.assert_clean()


def test_a_new_version_replaces_and_two_versions_compare(
    page, live_server, draft, sign_in, console, tmp_path
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide: list[str] = []
    first = tmp_path / "first" / "notes.txt"
    second = tmp_path / "second" / "notes.txt"
    for path, text in (
        (first, b"INR 1.3\nBilirubin 1.8\n"),
        (second, b"INR 1.5\nBilirubin 2.4\nAlbumin 3.1\n"),
    ):
        path.parent.mkdir()
        path.write_bytes(text)
    record = draft["record"]
    sign_in(page, draft["doctor"].email)
    page.goto(f"{live_server}/records/{record.id}")
    files = page.get_by_role("region", name="Files")
    files.get_by_label(re.compile("choose files")).set_input_files(first)
    files.get_by_role("button", name="Upload", exact=True).click()
    expect(files.locator("[data-upload-summary]")).to_have_text("1 uploaded.", timeout=UPLOAD_TIMEOUT_MS)
    files.locator("table.file-table").get_by_role("link", name="notes.txt").click()

    replace = page.get_by_role("region", name="Replace with a new version")
    replace.get_by_label(re.compile("choose a file")).set_input_files(second)
    replace.get_by_role("button", name="Upload", exact=True).click()
    expect(replace.locator(".upload-status")).to_have_text("Uploaded as version 2", timeout=UPLOAD_TIMEOUT_MS)
    versions = page.get_by_role("region", name="Versions")
    expect(versions.locator("tbody tr")).to_have_count(2)
    expect(page.locator("pre.file-text")).to_contain_text("Albumin 3.1")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "versions", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)

    versions.get_by_role("button", name="Compare the chosen versions").click()
    expect(page.locator(".diff-removed", has_text="INR 1.3")).to_be_visible()
    expect(page.locator(".diff-added", has_text="Albumin 3.1")).to_be_visible()
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "compare", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)
    page.go_back()

    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status").first).to_contain_text("Version 1 restored as version 3.")
    expect(page.locator("pre.file-text")).to_contain_text("Bilirubin 1.8")
    assert not too_wide, too_wide
    console.assert_clean()


def test_an_interrupted_upload_resumes_and_a_cancelled_one_leaves_nothing(
    page, live_server, draft, sign_in, console, tmp_path
):
    console.allow("net::ERR_")  # the part requests held back and dropped on purpose
    big = tmp_path / "ct-series.txt"
    big.write_bytes(_big_text(BIG_BYTES))
    record = draft["record"]
    # Every PUT of a part passes here: `hold` says which ones (by count) never get an answer.
    parts = {"sent": 0, "hold": {2}}

    def parts_route(route) -> None:
        parts["sent"] += 1
        if parts["sent"] in parts["hold"] or "all" in parts["hold"]:
            return  # never answered: the page is left, or the upload cancelled, while it is on its way
        route.continue_()

    sign_in(page, draft["doctor"].email)
    page.route(re.compile(r"/files/local-part/"), parts_route)
    page.goto(f"{live_server}/records/{record.id}")
    files = page.get_by_role("region", name="Files")
    files.get_by_label(re.compile("choose files")).set_input_files(big)
    files.get_by_role("button", name="Upload", exact=True).click()
    # Part 1 arrives (8 of 9 MiB: 88%), part 2 is on its way and never answered.
    expect(files.locator(".upload-percent")).to_have_text("88%", timeout=UPLOAD_TIMEOUT_MS)
    for _ in range(200):
        if parts["sent"] == 2:
            break
        page.wait_for_timeout(50)
    assert parts["sent"] == 2

    # The page is reloaded mid-upload: the open upload is listed, and choosing the file again resumes it,
    # sending only the part that had not arrived.
    page.reload()
    files = page.get_by_role("region", name="Files")
    expect(files.locator(".interrupted-uploads")).to_contain_text("ct-series.txt")
    expect(files.locator(".interrupted-uploads")).to_contain_text("Choose the same file again")
    parts["sent"], parts["hold"] = 0, set()
    files.get_by_label(re.compile("choose files")).set_input_files(big)
    files.get_by_role("button", name="Upload", exact=True).click()
    expect(files.locator("[data-upload-summary]")).to_have_text("1 uploaded.", timeout=UPLOAD_TIMEOUT_MS)
    assert parts["sent"] == 1, "only the missing part is sent again"
    assert db.session.scalar(select(func.count()).select_from(UploadSession)) == 1
    expect(files.locator("table.file-table").get_by_role("link", name="ct-series.txt")).to_be_visible()
    expect(files.locator(".interrupted-uploads")).to_have_count(0)

    # A cancelled upload: the part in flight is dropped and the store's upload aborted.
    parts["sent"], parts["hold"] = 0, {"all"}
    other = tmp_path / "other-series.txt"
    other.write_bytes(_big_text(BIG_BYTES))
    files.get_by_label(re.compile("choose files")).set_input_files(other)
    files.get_by_role("button", name="Upload", exact=True).click()
    row = files.locator(".upload-item", has_text="other-series.txt")
    expect(row.locator(".upload-status")).to_have_text("Uploading…")
    for _ in range(200):
        if parts["sent"] == 1:
            break
        page.wait_for_timeout(50)
    assert parts["sent"] == 1, "the first part is on its way"
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/uploads/" in r.url) as aborted:
        row.get_by_role("button", name="Cancel the upload of other-series.txt").click()
    assert aborted.value.status == 204
    expect(row.locator(".upload-status")).to_have_text("Cancelled")
    expect(files.locator("[data-upload-summary]")).to_have_text("1 cancelled.")
    session = db.session.scalar(select(UploadSession).where(UploadSession.filename == "other-series.txt"))
    assert session.status == "aborted"

    # Cancelled while the part URLs are on their way: they arrive after the cancel, and no part is sent
    # (the row used to stay "Uploading…" with a part held forever).
    parts["sent"] = 0
    asked = []
    page.route(re.compile(r"/uploads/[^/]+/parts$"), lambda route: asked.append(route))
    third = tmp_path / "third-series.txt"
    third.write_bytes(_big_text(BIG_BYTES))
    files.get_by_label(re.compile("choose files")).set_input_files(third)
    files.get_by_role("button", name="Upload", exact=True).click()
    row = files.locator(".upload-item", has_text="third-series.txt")
    for _ in range(200):
        if asked:
            break
        page.wait_for_timeout(50)
    assert asked, "the page asked for the part URLs"
    answer = asked[0].fetch()  # the app hands them out before the cancel; the page gets them after it
    assert answer.status == 200
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/uploads/" in r.url) as aborted:
        row.get_by_role("button", name="Cancel the upload of third-series.txt").click()
    assert aborted.value.status == 204
    asked[0].fulfill(response=answer)
    expect(row.locator(".upload-status")).to_have_text("Cancelled")
    assert parts["sent"] == 0, "no part goes to the store after the cancel"
    session = db.session.scalar(select(UploadSession).where(UploadSession.filename == "third-series.txt"))
    db.session.refresh(session)
    assert session.status == "aborted"
    console.assert_clean()


def test_a_file_chosen_before_the_uploader_script_runs_is_not_lost(
    page, live_server, draft, sign_in, console, tmp_path
):
    """On a slow connection the page shows before uploader.js runs; a file chosen then must not be lost."""
    early = tmp_path / "early.txt"
    early.write_bytes(b"ALT 64 U/L\n")
    held = []
    sign_in(page, draft["doctor"].email)
    page.route(re.compile(r"/static/js/uploader\.js"), lambda route: held.append(route))
    page.goto(f"{live_server}/records/{draft['record'].id}", wait_until="commit")
    files = page.get_by_role("region", name="Files")
    files.get_by_label(re.compile("choose files")).set_input_files(early)
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)
    assert held, "the page asked for uploader.js"
    assert page.evaluate("() => !document.querySelector('[data-uploader]').uploader")
    held[0].continue_()
    files.get_by_role("button", name="Upload", exact=True).click()
    expect(files.locator("[data-upload-summary]")).to_have_text("1 uploaded.", timeout=UPLOAD_TIMEOUT_MS)
    expect(files.locator("table.file-table").get_by_role("link", name="early.txt")).to_be_visible()
    console.assert_clean()
