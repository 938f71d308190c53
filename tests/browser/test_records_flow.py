"""A doctor writes a medical record from a template in a real browser, finalizes and amends it, finds it
again, and reads the patient's lab trends and liver scores; nurses, front desk and other clinics are kept
out of what is not theirs.

These prove what the view tests cannot: the ICD-10-CM typeahead swaps its list and a pick fills the row,
the record search swaps in place and pushes the URL, the trend charts draw under the CSP, the pages look
right at desktop and phone widths (screenshots in test-artifacts/screenshots/records-*.png), and the
printed record leaves out the navigation and the buttons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.records import services as records
from healthcrm.records.models import LabResult
from healthcrm.records.record_templates import TemplateInput, create_template
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_patient, make_tenant, make_user

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
TEMPLATE = "Hepatology follow-up"
PICKED_CODE = "R18.8"
ADDENDUM = "INR repeated on the same day: 1.6."
# (LOINC code, name, unit, value two months ago, value one month ago)
EARLIER_LABS = [
    ("1975-2", "Bilirubin, total", "mg/dL", 1.8, 2.4),
    ("6301-6", "INR", "INR", 1.3, 1.5),
    ("2160-0", "Creatinine", "mg/dL", 0.9, 1.1),
    ("2951-2", "Sodium", "mmol/L", 136, 133),
    ("1751-7", "Albumin", "g/dL", 3.4, 3.1),
]


@dataclass
class HepatologyClinic:
    tenant: object
    admin: object
    doctor: object
    nurse: object
    front_desk: object
    patient: object
    other_doctor: object


@pytest.fixture
def hepatology(app) -> HepatologyClinic:
    tenant = make_tenant("Lakeside Liver Clinic")
    domain = f"clinic{tenant.id}.example.com"
    admin = make_user(tenant, "admin", full_name="Morgan Reyes", email=f"morgan@{domain}")
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor", email=f"sam@{domain}")
    nurse = make_user(tenant, "nurse", full_name="Nia Brooks", email=f"nia@{domain}")
    front_desk = make_user(tenant, "front_desk", full_name="Frank Desmond", email=f"frank@{domain}")
    patient = make_patient(tenant, first_name="Elena", last_name="Marsh", sex="female")
    create_template(
        Actor(tenant_id=tenant.id, user_id=admin.id, role="admin"),
        TemplateInput(
            name=TEMPLATE,
            specialty="Hepatology",
            description="Cirrhosis follow-up with liver scores",
            sections=["vitals", "diagnoses", "prescriptions", "labs", "assessment", "plan", "follow_up"],
            chief_complaint="Follow-up of alcoholic cirrhosis",
            treatment_plan="Continue abstinence. Low-salt diet.",
            follow_up_days=90,
            default_diagnosis_codes=["K70.31"],
        ),
    )
    now = datetime.now(ZoneInfo("UTC")).replace(tzinfo=None, microsecond=0)
    for code, name, unit, *values in EARLIER_LABS:
        for days_ago, value in zip((60, 30), values, strict=True):
            db.session.add(
                LabResult(
                    tenant_id=tenant.id,
                    patient_id=patient.id,
                    code=code,
                    name=name,
                    value_numeric=float(value),
                    unit=unit,
                    observed_at=now - timedelta(days=days_ago),
                    entered_by_id=nurse.id,
                )
            )
    db.session.commit()
    elsewhere = make_tenant("Hilltop Clinic")
    other_doctor = make_user(elsewhere, "doctor", email=f"doc@clinic{elsewhere.id}.example.com")
    return HepatologyClinic(tenant, admin, doctor, nurse, front_desk, patient, other_doctor)


def _clinic_time(tenant, hours_ago: int = 1) -> str:
    moment = datetime.now(ZoneInfo(tenant.timezone)) - timedelta(hours=hours_ago)
    return moment.strftime("%Y-%m-%d %H:%M")


def _shoot(page, name: str, width: int, too_wide: list[str], *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"records-{name}-{width}.png"), full_page=full_page)
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"records-{name} at {width} px is {overflow} px wider than the screen")


def _csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def test_doctor_writes_finalizes_amends_and_finds_a_record(
    page, new_context, live_server, hepatology, sign_in, console
):
    clinic = hepatology
    patient = clinic.patient
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide: list[str] = []

    # The doctor opens the patient and starts a record from the hepatology template.
    sign_in(page, clinic.doctor.email)
    page.goto(f"{live_server}/patients/{patient.id}")
    records_card = page.get_by_role("region", name="Medical records")
    expect(records_card).to_contain_text("No records yet.")
    records_card.get_by_role("link", name="New record").click()
    expect(page).to_have_url(f"{live_server}/patients/{patient.id}/records/new")
    page.get_by_label("Start from a template").select_option(label=f"{TEMPLATE} · Hepatology")
    page.get_by_role("button", name="Use template").click()
    expect(page).to_have_url(re.compile(r"/records/new\?template=\d+$"))
    expect(page.get_by_text(f"From template “{TEMPLATE}”, version 1.")).to_be_visible()
    expect(page.get_by_label("Chief complaint")).to_have_value("Follow-up of alcoholic cirrhosis")
    expect(page.locator("#diagnoses-0-code")).to_have_value("K70.31")
    # The template's diagnosis is a suggestion: it is saved as a diagnosis once the doctor confirms it.
    page.get_by_role("group", name="Diagnosis 1").get_by_label("Confirm").check()

    # Vitals.
    for label, value in {
        "Systolic (mmHg)": "118",
        "Diastolic (mmHg)": "74",
        "Pulse (/min)": "82",
        "Temperature (°C)": "36.8",
        "SpO2 (%)": "97",
        "Weight (kg)": "64.5",
        "Height (cm)": "168",
    }.items():
        page.get_by_label(label).fill(value)

    # A second diagnosis from the typeahead: the list is swapped in, a click on an option fills code and name.
    code = page.get_by_role("group", name="Diagnosis 2").get_by_role("combobox", name="ICD-10-CM code")
    with page.expect_response(lambda r: "/records/icd10/1" in r.url) as answer:
        code.press_sequentially("ascites", delay=20)
    assert answer.value.status == 200
    expect(code).to_have_attribute("aria-expanded", "true")
    listbox = page.get_by_role("listbox", name="ICD-10-CM codes for diagnosis 2")
    pick = listbox.locator(f"[role=option][data-code='{PICKED_CODE}']")
    expect(pick).to_be_visible()
    picked_name = pick.get_attribute("data-name")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        code.scroll_into_view_if_needed()
        # The scrolling list is painted a frame after the resize; without the wait it can come out blank.
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        _shoot(page, "typeahead", viewport["width"], too_wide, full_page=False)
    page.set_viewport_size(DESKTOP)
    pick.click()
    expect(code).to_have_value(PICKED_CODE)
    expect(code).to_be_focused()
    expect(page.locator("#diagnoses-1-name")).to_have_value(picked_name)
    expect(code).to_have_attribute("aria-expanded", "false")
    expect(listbox).to_be_hidden()

    # A prescription and today's bilirubin.
    page.locator("#prescriptions-0-drug").fill("Spironolactone")
    page.locator("#prescriptions-0-dose").fill("100 mg")
    page.locator("#prescriptions-0-route").select_option("oral")
    page.locator("#prescriptions-0-frequency").fill("once daily")
    page.locator("#labs-0-code").fill("1975-2")
    page.locator("#labs-0-value").fill("3.1")
    page.locator("#labs-0-ref_low").fill("0.1")
    page.locator("#labs-0-ref_high").fill("1.2")
    page.locator("#labs-0-observed_at").fill(_clinic_time(clinic.tenant))
    page.get_by_label("Ascites").select_option(index=2)

    # The filled form, as the doctor sees it before saving.
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "new-form", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/records/\d+$"))
    record_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("status").filter(has_text="Draft saved.")).to_be_visible()
    diagnoses = page.get_by_role("region", name="Diagnoses")
    expect(diagnoses).to_contain_text("K70.31")
    expect(diagnoses).to_contain_text(PICKED_CODE)
    expect(page.get_by_role("region", name="Prescriptions")).to_contain_text("Spironolactone")
    expect(page.get_by_role("region", name="Labs")).to_contain_text("Bilirubin, total")
    expect(page.get_by_role("region", name="Labs")).to_contain_text("High")

    # Finalize (after the confirm dialog), then amend.
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Finalize").click()
    expect(page.get_by_role("status").filter(has_text="Record finalized.")).to_be_visible()
    expect(page.get_by_role("button", name="Finalize")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit draft")).to_have_count(0)
    page.get_by_label("Addendum").fill(ADDENDUM)
    page.get_by_role("button", name="Add addendum").click()
    expect(page.get_by_role("status").filter(has_text="Addendum added.")).to_be_visible()
    expect(page.locator(".record-status")).to_contain_text("Amended")
    expect(page.get_by_role("region", name="Addenda")).to_contain_text(ADDENDUM)
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "detail", viewport["width"], too_wide)

    # Printed, the record keeps its content and drops the bar, the buttons and the forms.
    page.set_viewport_size(DESKTOP)
    page.emulate_media(media="print")
    page.screenshot(path=str(SCREENSHOTS / "records-detail-print.png"), full_page=True)
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.get_by_role("button", name="Add addendum")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.get_by_role("region", name="Diagnoses")).to_be_visible()
    expect(page.get_by_role("region", name="Addenda")).to_contain_text(ADDENDUM)
    page.emulate_media(media="screen")

    # Records: searching the picked code swaps the results in place and pushes the URL.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Records").click()
    expect(page).to_have_url(f"{live_server}/records")
    page.evaluate("window.__samePage = true")
    with page.expect_response(
        lambda r: "/records?" in r.url and r.request.headers.get("hx-request") == "true"
    ) as answer:
        page.get_by_label("Search complaint, diagnosis or code, notes, patient or MRN").fill(PICKED_CODE)
    assert "<html" not in answer.value.text(), "htmx got a whole page instead of the results block"
    expect(page).to_have_url(re.compile(r"/records\?.*q=R18\.8"))
    results = page.locator("#record-results")
    expect(results).to_contain_text("Showing 1–1 of 1 record.")
    expect(results.get_by_role("link")).to_have_count(1)
    assert page.evaluate("window.__samePage === true"), "the search reloaded the page"
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "list", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)
    results.get_by_role("link").click()
    expect(page).to_have_url(f"{live_server}/records/{record_id}")

    # The labs page is a flowsheet, a row per test; a test's trend chart opens on demand (bilirubin has
    # three values now).
    page.goto(f"{live_server}/patients/{patient.id}")
    page.get_by_role("link", name="Labs and trends", exact=True).click()
    expect(page).to_have_url(f"{live_server}/patients/{patient.id}/labs")
    expect(page.locator(".lab-sheet-table .lab-name")).to_have_count(len(EARLIER_LABS))
    page.get_by_role("link", name="Chart of Bilirubin, total").click()
    expect(page.locator(".lab-chart canvas[data-drawn]")).to_have_count(1)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.lab-chart canvas')].every(c => c.width > 0 && c.height > 0)"
    )
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "labs", viewport["width"], too_wide)
    page.set_viewport_size(DESKTOP)

    # Back on the patient page: MELD 3.0 has a number, from the new bilirubin and the earlier labs.
    page.get_by_role("link", name=f"← {patient.full_name}").click()
    scores = page.get_by_role("region", name="Liver scores")
    meld3 = scores.locator(".score").filter(
        has=page.locator(".score-name", has_text=re.compile(r"^MELD 3\.0$"))
    )
    expect(meld3.locator(".score-value")).to_have_text(re.compile(r"^\d+"))
    expect(meld3).to_contain_text("3.1 mg/dL")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _shoot(page, "patient", viewport["width"], too_wide)

    # The admin's templates page shows the template and that one record came from it.
    for viewport in (DESKTOP, PHONE):
        admin_page = new_context(viewport=viewport).new_page()
        sign_in(admin_page, clinic.admin.email)
        admin_page.goto(f"{live_server}/record-templates")
        row = admin_page.get_by_role("row").filter(has_text=TEMPLATE)
        expect(row.locator("td[data-label='Records']")).to_have_text("1")
        _shoot(admin_page, "templates", viewport["width"], too_wide)
        admin_page.context.close()

    assert not too_wide, "pages scroll sideways:\n" + "\n".join(too_wide)
    console.assert_clean()


def test_nurse_front_desk_and_other_clinics_are_kept_out(
    new_context, live_server, hepatology, sign_in, console
):
    clinic = hepatology
    patient = clinic.patient
    doctor = Actor(tenant_id=clinic.tenant.id, user_id=clinic.doctor.id, role="doctor")
    draft = records.create_record(
        doctor,
        patient.id,
        records.RecordInput(
            doctor_id=clinic.doctor.id,
            visit_at=utcnow().replace(microsecond=0) - timedelta(hours=2),
            chief_complaint="Abdominal swelling",
            diagnoses=[records.DiagnosisInput("R18.8", is_primary=True)],
        ),
    )
    # The browser logs every 403 and 404 page it loads; those are the point here.
    console.allow("status of 403")
    console.allow("status of 404")

    # A nurse reads and edits the draft but cannot finalize it, not even by posting the form herself.
    nurse = new_context().new_page()
    sign_in(nurse, clinic.nurse.email)
    nurse.goto(f"{live_server}/records/{draft.id}")
    expect(nurse.get_by_role("heading", level=1)).to_have_text("Abdominal swelling")
    expect(nurse.get_by_role("link", name="Edit draft")).to_be_visible()
    expect(nurse.get_by_role("button", name="Finalize")).to_have_count(0)
    answer = nurse.request.post(
        f"{live_server}/records/{draft.id}/finalize", form={"csrf_token": _csrf(nurse)}, max_redirects=0
    )
    assert answer.status == 403
    nurse.reload()
    expect(nurse.locator(".record-status")).to_contain_text("Draft")

    # Front desk sees the patient's profile but nothing clinical, and not the records list.
    desk = new_context().new_page()
    sign_in(desk, clinic.front_desk.email)
    desk.goto(f"{live_server}/patients/{patient.id}")
    expect(desk.get_by_role("heading", level=1)).to_contain_text(patient.full_name)
    expect(desk.get_by_role("region", name="Medical records")).to_have_count(0)
    expect(desk.get_by_role("heading", name="Clinical")).to_have_count(0)
    expect(desk.get_by_role("navigation", name="Main").get_by_role("link", name="Records")).to_have_count(0)
    assert desk.goto(f"{live_server}/records").status == 403
    assert desk.goto(f"{live_server}/records/{draft.id}").status == 403

    # A doctor of another clinic cannot tell the record exists.
    outsider = new_context().new_page()
    sign_in(outsider, clinic.other_doctor.email)
    assert outsider.goto(f"{live_server}/records/{draft.id}").status == 404
    assert outsider.goto(f"{live_server}/patients/{patient.id}/labs").status == 404
    console.assert_clean()
