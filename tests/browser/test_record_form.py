"""The record form in a real browser: the ICD-10-CM code box works as an ARIA combobox from the keyboard and
the mouse, and the "Add …" buttons add rows with htmx, or by posting the form when JavaScript is off.

Screenshots of the open combobox: test-artifacts/screenshots/record-form-combobox-{1280,390}.png; of the
form with a template's suggestions: record-form-template-{1280,390}.png.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.records import record_templates
from healthcrm.records.models import MedicalRecord
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_patient, make_tenant, make_user

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
NEXT_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


@dataclass
class Ward:
    doctor: object
    patient: object


@pytest.fixture
def ward(app) -> Ward:
    tenant = make_tenant("Lakeside Liver Clinic")
    email = f"sam@clinic{tenant.id}.example.com"
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor", email=email)
    return Ward(doctor, make_patient(tenant, first_name="Elena", last_name="Marsh"))


def _new_record(page, live_server, ward, sign_in) -> None:
    sign_in(page, ward.doctor.email)
    page.goto(f"{live_server}/patients/{ward.patient.id}/records/new")
    expect(page.get_by_role("heading", level=1)).to_contain_text("New record")


def _diagnosis(page, number: int):
    return page.get_by_role("group", name=f"Diagnosis {number}")


def test_icd10_combobox_from_the_keyboard(page, live_server, ward, sign_in, console):
    _new_record(page, live_server, ward, sign_in)
    page.get_by_label("Chief complaint").fill("Jaundice")
    code = _diagnosis(page, 1).get_by_role("combobox", name="ICD-10-CM code")
    expect(code).to_have_attribute("aria-expanded", "false")
    expect(code).to_have_attribute("aria-controls", "icd10-listbox-0")

    code.click()
    with page.expect_response(lambda r: "/records/icd10/0" in r.url) as answer:
        code.press_sequentially("K70", delay=30)
    assert answer.value.status == 200
    listbox = page.get_by_role("listbox", name="ICD-10-CM codes for diagnosis 1")
    options = listbox.get_by_role("option")
    expect(code).to_have_attribute("aria-expanded", "true")
    expect(options.first).to_contain_text("K70")
    expect(page.locator("#icd10-status-0")).to_contain_text(re.compile(r"\d+ matching codes"))
    assert "aria-activedescendant" not in code.evaluate("e => e.getAttributeNames()")

    # The arrows move through the options (the focus stays in the box), down from the last wraps to the first.
    code.press("ArrowDown")
    first = options.nth(0)
    expect(code).to_have_attribute("aria-activedescendant", first.get_attribute("id"))
    expect(first).to_have_attribute("aria-selected", "true")
    code.press("ArrowDown")
    second = options.nth(1)
    expect(code).to_have_attribute("aria-activedescendant", second.get_attribute("id"))
    expect(second).to_have_attribute("aria-selected", "true")
    expect(first).to_have_attribute("aria-selected", "false")
    code.press("ArrowUp")
    code.press("ArrowUp")
    last = options.last
    expect(code).to_have_attribute("aria-activedescendant", last.get_attribute("id"))
    code.press("ArrowDown")
    expect(code).to_have_attribute("aria-activedescendant", first.get_attribute("id"))
    expect(code).to_be_focused()

    # The open list, at desktop and phone widths.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide = []
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        _diagnosis(page, 1).evaluate("row => row.scrollIntoView({block: 'start'})")
        # A scrolling list is painted a frame after a resize; without the wait it can come out blank.
        page.evaluate(NEXT_FRAMES)
        page.screenshot(path=str(SCREENSHOTS / f"record-form-combobox-{viewport['width']}.png"))
        if page.evaluate(OVERFLOW) > 0:
            too_wide.append(viewport["width"])
    page.set_viewport_size(DESKTOP)
    assert not too_wide, f"the record form scrolls sideways at {too_wide} px"

    # Escape closes the list and keeps what was typed.
    code.press("Escape")
    expect(code).to_have_attribute("aria-expanded", "false")
    expect(listbox).to_be_hidden()
    expect(code).to_have_value("K70")

    # Down opens it again on the first option; Enter picks it, fills code and name, and does not submit.
    code.press("ArrowDown")
    expect(code).to_have_attribute("aria-expanded", "true")
    picked_code = first.get_attribute("data-code")
    picked_name = first.get_attribute("data-name")
    code.press("ArrowDown")
    code.press("ArrowUp")
    code.press("Enter")
    expect(code).to_have_value(picked_code)
    expect(page.locator("#diagnoses-0-name")).to_have_value(picked_name)
    expect(code).to_have_attribute("aria-expanded", "false")
    assert "aria-activedescendant" not in code.evaluate("e => e.getAttributeNames()")
    expect(code).to_be_focused()
    expect(page).to_have_url(f"{live_server}/patients/{ward.patient.id}/records/new")
    assert db.session.scalar(db.select(MedicalRecord.id)) is None

    # A query with no match says so in the row's live region; there is no list to open.
    other = _diagnosis(page, 2).get_by_role("combobox", name="ICD-10-CM code")
    with page.expect_response(lambda r: "/records/icd10/1" in r.url):
        other.press_sequentially("xylophone", delay=20)
    expect(page.locator("#icd10-status-1")).to_have_text("No matching codes.")
    expect(page.locator("#icd10-status-1")).to_have_attribute("role", "status")
    expect(other).to_have_attribute("aria-expanded", "false")
    other.press("ArrowDown")
    expect(other).to_have_attribute("aria-expanded", "false")
    other.fill("")

    # Enter with the list closed saves the draft as usual, with the picked code.
    code.press("Enter")
    expect(page).to_have_url(re.compile(r"/records/\d+$"))
    expect(page.get_by_role("region", name="Diagnoses")).to_contain_text(picked_code)
    console.assert_clean()


def test_add_rows_with_htmx_up_to_the_limit(page, live_server, ward, sign_in, console):
    _new_record(page, live_server, ward, sign_in)
    page.get_by_label("Chief complaint").fill("Ascites")
    expect(page.get_by_role("group", name=re.compile(r"^Diagnosis \d$"))).to_have_count(2)
    page.locator("#diagnoses-0-code").fill("K70.31")
    page.evaluate("window.__samePage = true")

    add = page.get_by_role("button", name="Add diagnosis")
    with page.expect_response(lambda r: "/records/form-rows/diagnoses/2" in r.url):
        add.click()
    third = _diagnosis(page, 3)
    expect(third).to_be_visible()
    code = third.get_by_role("combobox", name="ICD-10-CM code")
    expect(code).to_be_focused()
    expect(page.locator("#diagnoses-0-code")).to_have_value("K70.31")
    assert page.evaluate("window.__samePage === true"), "adding a row reloaded the page"

    # The new row's combobox works, with its own listbox.
    with page.expect_response(lambda r: "/records/icd10/2" in r.url):
        code.press_sequentially("R18.8", delay=20)
    expect(code).to_have_attribute("aria-controls", "icd10-listbox-2")
    expect(page.locator("#icd10-listbox-2").get_by_role("option").first).to_contain_text("R18.8")
    code.press("ArrowDown")
    code.press("Enter")
    expect(code).to_have_value("R18.8")

    # Up to eight diagnoses; then the button gives way to a note.
    for number in range(4, 9):
        page.get_by_role("button", name="Add diagnosis").click()
        expect(_diagnosis(page, number)).to_be_visible()
    expect(page.get_by_role("button", name="Add diagnosis")).to_have_count(0)
    expect(page.get_by_text("At most 8 diagnoses on a record.")).to_be_visible()
    ids = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), "duplicate ids after adding rows"

    # A prescription row too.
    page.get_by_role("button", name="Add prescription").click()
    drug = page.get_by_role("group", name="Prescription 3").get_by_label("Drug")
    expect(drug).to_be_focused()
    drug.fill("Spironolactone")
    page.locator("#prescriptions-2-dose").fill("100 mg")
    page.locator("#prescriptions-2-route").select_option("oral")
    page.locator("#prescriptions-2-frequency").fill("once daily")

    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/records/\d+$"))
    expect(page.get_by_role("region", name="Diagnoses")).to_contain_text("R18.8")
    expect(page.get_by_role("region", name="Prescriptions")).to_contain_text("Spironolactone")
    console.assert_clean()


def test_add_row_without_javascript_posts_the_form_and_keeps_what_was_typed(
    new_context, live_server, ward, sign_in, console
):
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, ward.doctor.email)
    page.goto(f"{live_server}/patients/{ward.patient.id}/records/new")
    page.get_by_label("Chief complaint").fill("Ascites")
    page.locator("#diagnoses-0-code").fill("K70.31")
    page.locator("#labs-1-value").fill("3.1")

    page.get_by_role("button", name="Add lab result").click()
    expect(page.get_by_role("group", name="Lab result 3")).to_be_visible()
    expect(page.get_by_label("Chief complaint")).to_have_value("Ascites")
    expect(page.locator("#diagnoses-0-code")).to_have_value("K70.31")
    expect(page.locator("#labs-1-value")).to_have_value("3.1")
    expect(page.locator("#labs-2-code")).to_be_focused()
    assert db.session.scalar(db.select(MedicalRecord.id)) is None

    # Typing a code without the list still saves the diagnosis.
    page.locator("#labs-1-value").fill("")
    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/records/\d+$"))
    expect(page.get_by_role("region", name="Diagnoses")).to_contain_text("K70.31")
    console.assert_clean()


def test_template_suggestions_are_marked_and_must_be_confirmed_before_finalizing(
    page, live_server, ward, sign_in, console
):
    admin = make_user(ward.doctor.tenant, "admin", email=f"admin@clinic{ward.doctor.tenant_id}.example.com")
    template = record_templates.create_template(
        Actor(tenant_id=admin.tenant_id, user_id=admin.id, role="admin"),
        record_templates.TemplateInput(
            name="Hepatology follow-up",
            specialty="Hepatology",
            chief_complaint="Cirrhosis follow-up",
            treatment_plan="Alcohol abstinence; sodium restriction.",
            default_diagnosis_codes=["K70.31", "R18.8"],
        ),
    )
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, ward.doctor.email)
    page.goto(f"{live_server}/patients/{ward.patient.id}/records/new?template={template.id}")

    # What the template filled in is marked, and its diagnoses wait for a tick.
    plan = page.get_by_label("Treatment plan")
    expect(plan).to_have_value("Alcohol abstinence; sodium restriction.")
    expect(page.locator("#treatment_plan-hint")).to_have_text(re.compile("^Suggested by the template"))
    first = _diagnosis(page, 1)
    expect(page.get_by_role("group", name="Diagnosis 1 (suggested by the template)")).to_be_visible()
    expect(first.get_by_text("Suggested by the template")).to_be_visible()
    expect(first.get_by_label("Confirm")).not_to_be_checked()
    expect(page.locator("#diagnoses-1-row").get_by_label("Confirm")).not_to_be_checked()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide = []
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        page.evaluate("window.scrollTo(0, 0)")
        page.evaluate(NEXT_FRAMES)
        page.screenshot(
            path=str(SCREENSHOTS / f"record-form-template-{viewport['width']}.png"), full_page=True
        )
        if page.evaluate(OVERFLOW) > 0:
            too_wide.append(viewport["width"])
    page.set_viewport_size(DESKTOP)
    assert not too_wide, f"the record form with a template scrolls sideways at {too_wide} px"

    # Editing the chief complaint makes it the clinician's: its mark goes as they type.
    complaint = page.get_by_label("Chief complaint")
    expect(page.locator("#chief_complaint-hint")).to_be_visible()
    complaint.press_sequentially(", tense ascites", delay=10)
    expect(page.locator("#chief_complaint-hint")).to_have_count(0)
    expect(plan).to_have_attribute("aria-describedby", "treatment_plan-hint")

    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/records/\d+$"))
    expect(page.get_by_role("region", name="Diagnoses")).not_to_contain_text("K70.31")

    # Finalizing is refused, naming the unconfirmed suggestions; nothing changes.
    page.get_by_role("button", name="Finalize").click()
    alert = page.get_by_text("The template suggested diagnoses nobody has confirmed")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("K70.31 Alcoholic cirrhosis of liver with ascites")
    expect(alert).to_contain_text("R18.8")
    record = db.session.scalars(db.select(MedicalRecord)).one()
    assert record.is_draft

    # Confirm the first suggestion, clear the second, save, finalize.
    page.get_by_role("link", name="Edit draft").click()
    _diagnosis(page, 1).get_by_label("Confirm").check()
    page.locator("#diagnoses-1-code").fill("")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("region", name="Diagnoses")).to_contain_text("K70.31")
    page.get_by_role("button", name="Finalize").click()
    expect(page.get_by_text("Record finalized.")).to_be_visible()
    db.session.expire_all()
    record = db.session.get(MedicalRecord, record.id)
    assert record.is_finalized and [d.code for d in record.diagnoses] == ["K70.31"]
    console.assert_clean()
