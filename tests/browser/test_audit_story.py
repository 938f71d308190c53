"""Issue 13's "done when" story in the browser: the admin at 1280 px, the patient on a 390 px phone.

The admin filters the audit log to one patient and one week (in place, in the URL), widens it to a month
that has gone to the archive, loads that month with its progress bar and sees its events marked Archived,
exports the filtered events to CSV (progress bar, download) and verifies the chain and the signed
checkpoints. The patient sees that the doctor opened their record, downloads the accounting of disclosures
and their record as FHIR. Then someone deletes the newest audit rows by hand in the database: the viewer's
check, `flask audit verify` and the nightly job all name the missing range from the checkpoint, and the
admin gets the email. Screenshots of each step land in test-artifacts/audit/.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from email import policy
from email.parser import BytesParser

import time_machine
from fhir.resources.bundle import Bundle
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import select

from healthcrm.audit import alerts
from healthcrm.audit import archive as archiving
from healthcrm.audit.checkpoints import write_checkpoint
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from tests.audit.tampering import cut_tail
from tests.browser.conftest import ARTIFACTS, PHONE
from tests.factories import make_patient, make_portal_user, make_tenant, make_user

SHOTS = ARTIFACTS / "audit"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# Fixed days long past (the database's own clock decides what may leave the table: months ended 90+ days
# ago). January 2023 goes to the archive; the week of 5–11 February 2024 stays in the table.
ARCHIVED_DAYS = [datetime(2023, 1, day, 11, 0) for day in (9, 16, 23)]
WEEK_DAYS = [datetime(2024, 2, day, 11, 0) for day in (5, 7, 9)]
OUTSIDE_WEEK = datetime(2024, 2, 20, 11, 0)
ARCHIVE_DAY = datetime(2024, 3, 5, 12, 0)
# Jobs run in a real worker in CI, which a loaded machine slows down.
JOB_WAIT_MS = 90_000


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def _history(tenant_id: int, doctor, patient, other) -> None:
    """The doctor's reads over a year: three archived, three in the week, one after it, one elsewhere."""
    actor = Actor(tenant_id=tenant_id, user_id=doctor.id, role="doctor")
    for moment in [*ARCHIVED_DAYS, *WEEK_DAYS, OUTSIDE_WEEK]:
        record_event(actor, "patient.view", resource_type="patient", resource_id=patient.id,
                     patient_id=patient.id, occurred_at=moment)  # fmt: skip
    record_event(actor, "patient.view", resource_type="patient", resource_id=other.id,
                 patient_id=other.id, occurred_at=WEEK_DAYS[1])  # fmt: skip
    db.session.commit()
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        assert [a.month for a in archiving.archive_due(tenant_id)] == ["2023-01"]


def _event_rows(page) -> int:
    return page.locator("#events tbody tr").count()


def test_the_audit_story_from_the_admins_filter_to_the_patients_export_and_a_cut_log(
    app, new_context, live_server, sign_in, console, drain_jobs, outbox_dir
):
    clinic = make_tenant("Riverside Family Clinic")
    domain = f"clinic{clinic.id}.example.com"
    admin = make_user(clinic, "admin", full_name="Morgan Reyes", email=f"morgan@{domain}")
    doctor = make_user(clinic, "doctor", full_name="Dr. Sam Okafor", email=f"sam@{domain}")
    patient = make_patient(clinic, first_name="Ada", last_name="Quinn", email=f"ada@{domain}")
    other = make_patient(clinic, first_name="Ben", last_name="Ortiz")
    portal_user = make_portal_user(patient)
    _history(clinic.id, doctor, patient, other)

    # The doctor opens the patient's page today: a real read, for the patient to see later.
    doctor_page = new_context().new_page()
    sign_in(doctor_page, doctor.email)
    doctor_page.goto(f"{live_server}/patients/{patient.id}")
    expect(doctor_page.get_by_role("heading", name="Ada Quinn")).to_be_visible()

    # --- the admin: one patient, one week, in place and in the URL -------------------------------------
    page = new_context().new_page()
    sign_in(page, admin.email)
    page.goto(f"{live_server}/audit")
    page.get_by_label("Patient id").fill(str(patient.id))
    page.get_by_label("Patient id").dispatch_event("change")
    page.wait_for_url(f"**patient={patient.id}**")
    page.get_by_label("From").fill("2024-02-05")
    page.get_by_label("To").fill("2024-02-11")
    page.get_by_label("To").dispatch_event("change")
    page.wait_for_url("**date_to=2024-02-11**")
    expect(page.locator("#events tbody tr")).to_have_count(len(WEEK_DAYS))
    expect(page.locator("#events")).to_contain_text("Ada Quinn")
    expect(page.locator("#events")).not_to_contain_text("Ben Ortiz")
    _shot(page, "1-one-patient-one-week")

    # Back to January 2023: that month is in the archive, and the viewer offers to search it.
    page.get_by_label("From").fill("2023-01-01")
    page.get_by_label("From").dispatch_event("change")
    page.wait_for_url("**date_from=2023-01-01**")
    expect(page.locator("#events tbody tr")).to_have_count(len(WEEK_DAYS))
    page.reload()  # the archive offer sits outside the list fragment
    page.get_by_role("button", name="Search 1 archived month too").click()
    expect(page.get_by_role("link", name="Show the results")).to_be_visible(timeout=JOB_WAIT_MS)
    expect(page.locator("#archive-load")).to_contain_text("3 archived events loaded")
    page.get_by_role("link", name="Show the results").click()
    expect(page.locator("#events tbody tr")).to_have_count(len(ARCHIVED_DAYS) + len(WEEK_DAYS))
    expect(page.locator("#events .badge", has_text="Archived")).to_have_count(len(ARCHIVED_DAYS))
    _shot(page, "2-archived-month-loaded")

    # The filtered events to CSV: a job with a progress bar, then a download.
    page.get_by_role("button", name="Export these events (CSV)").click()
    expect(page.locator("#audit-export progress, #audit-export a")).not_to_have_count(0)
    download_link = page.get_by_role("link", name="Download the CSV")
    expect(download_link).to_be_visible(timeout=JOB_WAIT_MS)
    with page.expect_download() as download:
        download_link.click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig"))))
    assert len(rows) == len(ARCHIVED_DAYS) + len(WEEK_DAYS)
    assert {row["action"] for row in rows} == {"patient.view"}
    assert all("Ada Quinn" in row["patient"] and row["role"] == "doctor" for row in rows)
    _shot(page, "3-csv-exported")

    # The chain and the signed checkpoints agree.
    write_checkpoint(clinic.id)
    page.get_by_role("link", name="Verify the chain").click()
    expect(page.get_by_text("The chain is intact")).to_be_visible()
    expect(page.get_by_text("The signed checkpoints agree with the log: 1 checked")).to_be_visible()

    # --- the patient, on a phone: who opened the record, the disclosures, the FHIR export --------------
    phone = new_context(viewport=PHONE).new_page()
    sign_in(phone, portal_user.email)
    phone.goto(f"{live_server}/portal/access")
    expect(phone.get_by_role("heading", name="Who has seen my record")).to_be_visible()
    expect(phone.locator("#access-list")).to_contain_text("Dr. Sam Okafor (Doctor)")
    expect(phone.locator("#access-list")).to_contain_text("Opened your portal home page")
    assert phone.evaluate(OVERFLOW) <= 0, "the access page scrolls sideways at 390 px"
    _shot(phone, "4-who-has-seen-my-record")
    with phone.expect_download() as download:
        phone.get_by_role("link", name="Download accounting of disclosures (PDF)").click()
    text = "".join(p.extract_text() for p in PdfReader(download.value.path()).pages)
    assert "Ada Quinn" in text and "Accounting of disclosures" in text

    phone.goto(f"{live_server}/portal/export")
    phone.get_by_role("button", name="Prepare my record").click()
    ready = phone.get_by_role("link", name="Download my record (ZIP)")
    expect(ready).to_be_visible(timeout=JOB_WAIT_MS)
    _shot(phone, "5-record-ready")
    with phone.expect_download() as download:
        ready.click()
    with zipfile.ZipFile(download.value.path()) as archive:
        bundle = Bundle.model_validate(json.loads(archive.read("fhir-bundle.json")))
        assert archive.read("record.pdf").startswith(b"%PDF")
    patients = [e.resource for e in bundle.entry if e.resource.get_resource_type() == "Patient"]
    assert [p.name[0].family for p in patients] == ["Quinn"]

    # --- someone deletes the newest audit rows by hand ---------------------------------------------------
    drain_jobs(90)
    write_checkpoint(clinic.id)
    newest = db.session.scalars(
        select(AuditEvent.id).where(AuditEvent.tenant_id == clinic.id).order_by(AuditEvent.id.desc()).limit(3)
    ).all()
    cut_tail(clinic.id, newest[-1])
    kept = db.session.scalar(select(db.func.max(AuditEvent.id)).where(AuditEvent.tenant_id == clinic.id))
    missing = f"3 missing, after event {kept} up to event {newest[0]}"

    page.goto(f"{live_server}/audit?verify=1")
    expect(page.get_by_text("The chain is intact")).to_be_visible()  # a chain alone cannot see it
    expect(page.get_by_text("A signed checkpoint disagrees with the log")).to_be_visible()
    expect(page.locator(".alert-error")).to_contain_text(missing)
    _shot(page, "6-checkpoint-names-the-gap")

    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and missing in result.output

    assert alerts.nightly_verify() == "1 new findings"
    page.goto(f"{live_server}/audit")
    expect(page.get_by_text("The audit log check of")).to_be_visible()
    mails = [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in outbox_dir.glob("*.eml")]
    bodies = [m.get_body(preferencelist=("plain",)).get_content() for m in mails if admin.email in m["To"]]
    to_admin = [body for body in bodies if missing in body]
    assert len(to_admin) == 1
    console.assert_clean()
