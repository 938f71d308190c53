"""The staff bar in a browser: one row at 1280 px, a real menu on a phone, keyboard usable, and what
the audit log looks like. Screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from healthcrm.portal.notifications import notify_staff
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
ADMIN_ITEMS = [
    "Users",
    "Audit log",
    "Sharing overview",
    "Outbox",
    "Jobs",
    "Record templates",
    "Portal settings",
    "Scheduling settings",
]
MAIN_ITEMS = ["Patients", "Records", "Tasks", "Inbox", "Calendar"]
# One row of the bar: its padding and one line of links (about 56 px); two rows would be about 100.
ONE_ROW_MAX_PX = 64


def _seed_audit(clinic) -> None:
    admin = Actor(tenant_id=clinic.tenant.id, user_id=clinic.admin.id, role="admin")
    doctor = Actor(tenant_id=clinic.tenant.id, user_id=clinic.doctor.id, role="doctor")
    for patient in clinic.patients[:3]:
        record_event(
            doctor, "patient.view", resource_type="patient", resource_id=patient.id, patient_id=patient.id
        )
        record_event(
            doctor, "attachment.upload_start", resource_type="record", resource_id=1, patient_id=patient.id
        )
    record_event(admin, "user.invited", resource_type="user", resource_id=clinic.coach.id)
    db.session.commit()


def test_the_bar_is_one_row_at_1280_and_the_admin_menu_opens(
    new_context, live_server, clinic, sign_in, console
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _seed_audit(clinic)
    # Measured with the notification badge showing a count (the bar's widest state).
    notify_staff(clinic.tenant.id, [clinic.admin.id], "storage_alert", "Storage alert", None)
    clinic.tenant.name = "Riverside Family and Community Health Clinic of the Upper Valley"  # cut, no wrap
    db.session.commit()
    page = new_context(viewport=DESKTOP).new_page()
    sign_in(page, clinic.admin.email)
    page.goto(f"{live_server}/audit")
    bar = page.locator("header.topbar")
    height = bar.bounding_box()["height"]
    page.screenshot(path=str(SCREENSHOTS / "bar-1280.png"))
    assert height <= ONE_ROW_MAX_PX, f"the bar is {height} px tall at 1280: it wraps"
    nav = page.get_by_role("navigation", name="Main")
    for name in MAIN_ITEMS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Notifications 1 unread")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_be_hidden()
    # Keyboard: focus the Admin summary, open it with Enter, close it with Escape.
    summary = nav.locator("summary", has_text="Admin")
    summary.focus()
    page.keyboard.press("Enter")
    for name in ADMIN_ITEMS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "nav-admin-open-1280.png"))
    page.keyboard.press("Escape")
    expect(nav.get_by_role("link", name="Users")).to_be_hidden()
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.screenshot(path=str(SCREENSHOTS / "audit-log-1280.png"), full_page=True)
    # Doctors see no Admin menu and no Jobs.
    doctor = new_context(viewport=DESKTOP).new_page()
    sign_in(doctor, clinic.doctor.email)
    expect(doctor.get_by_role("navigation", name="Main").locator("summary")).to_have_count(0)
    expect(doctor.get_by_role("link", name="Jobs")).to_have_count(0)
    console.assert_clean()


def test_the_phone_menu_is_a_button_and_reaches_every_item(
    new_context, live_server, clinic, sign_in, console
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _seed_audit(clinic)
    # Measured with the notification badge showing a count (the bar's widest state).
    notify_staff(clinic.tenant.id, [clinic.admin.id], "storage_alert", "Storage alert", None)
    clinic.tenant.name = "Riverside Family and Community Health Clinic of the Upper Valley"  # cut, no wrap
    db.session.commit()
    page = new_context(viewport=PHONE).new_page()
    sign_in(page, clinic.admin.email)
    page.goto(f"{live_server}/audit")
    assert page.evaluate(OVERFLOW) <= 0
    page.screenshot(path=str(SCREENSHOTS / "audit-log-390.png"), full_page=True)
    toggle = page.get_by_role("button", name="Menu")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name="Patients")).to_be_hidden()
    # Keyboard: tab to the button (after the skip link and the brand), Enter opens.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    nav = page.get_by_role("navigation", name="Main")
    for name in MAIN_ITEMS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    nav.locator("summary", has_text="Admin").click()
    for name in ADMIN_ITEMS:
        link = nav.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{name} is off the screen"
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert page.evaluate(OVERFLOW) <= 0
    page.screenshot(path=str(SCREENSHOTS / "nav-menu-open-390.png"), full_page=True)
    page.keyboard.press("Escape")  # closes the Admin group first
    page.keyboard.press("Escape")  # then the menu
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(nav.get_by_role("link", name="Patients")).to_be_hidden()
    # The menu leads somewhere: open it and follow a link.
    toggle.click()
    nav.locator("summary", has_text="Admin").click()
    nav.get_by_role("link", name="Outbox").click()
    page.wait_for_url(f"{live_server}/outbox")
    console.assert_clean()


def test_without_javascript_the_phone_bar_lists_everything(new_context, live_server, clinic, sign_in):
    page = new_context(viewport=PHONE, java_script_enabled=False).new_page()
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill(clinic.admin.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server}/patients")
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    nav = page.get_by_role("navigation", name="Main")
    for name in MAIN_ITEMS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    nav.locator("summary", has_text="Admin").click()
    for name in ADMIN_ITEMS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert page.evaluate(OVERFLOW) <= 0
