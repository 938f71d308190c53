"""Issue 14's "done when" story in the browser, on the demo clinic: the admin opens the storage cost
dashboard (a year of daily metrics, files of several ages and classes), sets a cost alert below the month's
estimate, records today's figures and finds the alert's email in the outbox (once: recording again sends
none); previews the lifecycle rules and applies them to the bucket; and opens an archived demo file to
start its restore. Screenshots at 1280 and 390 px land in test-artifacts/storage/.
"""

from __future__ import annotations

import time
from email import policy
from email.parser import BytesParser

from playwright.sync_api import expect
from sqlalchemy import select

from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.files.models import AttachmentVersion
from tests.browser.conftest import ARTIFACTS, PHONE

SHOTS = ARTIFACTS / "storage"
PASSWORD = "demo-password-1"
ADMIN = "admin@riverside.example"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
JOB_WAIT_S = 90  # the alert's email is a job: a real worker in CI, which a loaded machine slows down


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{page.viewport_size['width']}.png"), full_page=True)


def _alert_emails(outbox_dir) -> list:
    found = []
    for path in sorted(outbox_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if str(message["Subject"]).startswith("Storage alert"):
            found.append(message)
    return found


def _wait_for_alert_emails(outbox_dir, at_least: int) -> list:
    deadline = time.monotonic() + JOB_WAIT_S
    while len(found := _alert_emails(outbox_dir)) < at_least and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_the_storage_story_dashboard_alert_lifecycle_and_restore(
    app, new_context, live_server, sign_in, console, outbox_dir, drain_jobs
):
    seed_demo(PASSWORD)
    drain_jobs(60)
    for message in outbox_dir.glob("*.eml"):
        message.unlink()  # the demo's own emails

    page = new_context().new_page()
    sign_in(page, ADMIN, PASSWORD)
    page.get_by_role("navigation", name="Main").locator("summary", has_text="Admin").click()
    page.get_by_role("link", name="Storage", exact=True).click()
    main = page.locator("main")
    expect(page.get_by_role("heading", name="Storage cost", level=1)).to_be_visible()
    for section in (
        "Stored",
        "This month (estimate)",
        "Forecast",
        "By storage class",
        "Trend",
        "Files by age",
    ):
        expect(page.get_by_role("heading", name=section, exact=True)).to_be_visible()
    # Each chart's figures are a table too: the classes the demo's files are in.
    classes = page.locator("section", has=page.get_by_role("heading", name="By storage class"))
    for storage_class in ("Glacier", "Deep Archive", "Intelligent-Tiering"):
        expect(classes.locator("table")).to_contain_text(storage_class)
    _shot(page, "dashboard")
    console.assert_clean()

    # A cost limit below the month's estimate (the demo's files are small: a fraction of a cent).
    page.get_by_label("Monthly cost (USD)").fill("0.000001")
    page.get_by_role("button", name="Save the limits").click()
    expect(page.locator("#thresholds")).to_contain_text("saved", ignore_case=True)
    console.assert_clean()
    page.get_by_role("button", name="Record today's figures now").click()
    expect(main).to_contain_text("Monthly cost")
    emails = _wait_for_alert_emails(outbox_dir, 1)
    assert len(emails) == 1, [str(m["Subject"]) for m in emails]
    body = emails[0].get_body(preferencelist=("plain",)).get_content()
    assert emails[0]["To"] == ADMIN and "Monthly cost" in body and "/admin/storage" in body
    # Still above the limit the next time: no second email for the same crossing.
    page.get_by_role("button", name="Record today's figures now").click()
    expect(main).to_contain_text("Alert history")
    drain_jobs(JOB_WAIT_S)
    assert len(_alert_emails(outbox_dir)) == 1
    _shot(page, "dashboard-alert")

    # The lifecycle rules: preview the difference against the bucket, then apply them.
    page.goto(f"{live_server}/admin/storage/lifecycle")
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    expect(main).to_contain_text("added")
    _shot(page, "lifecycle-preview")
    page.get_by_role("button", name="Apply to the bucket").click()
    expect(main).to_contain_text("read back and matched")
    expect(main).to_contain_text("unchanged")

    # An archived demo file: its page offers the retrieval speeds with their price and wait.
    report = db.session.scalar(
        select(AttachmentVersion)
        .where(
            AttachmentVersion.storage_class == "GLACIER", AttachmentVersion.original_name.contains("report")
        )
        .execution_options(all_tenants=True)
    )
    assert report is not None, "the demo has an archived visit report"
    page.goto(f"{live_server}/files/{report.attachment_id}/versions/{report.id}/archived")
    expect(main).to_contain_text("This file is archived")
    expect(main).to_contain_text("Standard")
    page.get_by_label("Standard", exact=False).first.check()
    page.get_by_role("button", name="Retrieve the file").click()
    expect(main).to_contain_text("retrieved")
    _shot(page, "restore")

    phone = new_context(viewport=PHONE).new_page()
    sign_in(phone, ADMIN, PASSWORD)
    phone.goto(f"{live_server}/admin/storage")
    expect(phone.get_by_role("heading", name="Storage cost", level=1)).to_be_visible()
    assert phone.evaluate(OVERFLOW) <= 1, "the dashboard scrolls sideways on a phone"
    _shot(phone, "dashboard")
    console.assert_clean()
