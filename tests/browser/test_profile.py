"""The profile at 390 px: it fits the phone, a section saves in place (htmx, no reload) and a name change is
asked for; the staff queue at 1280 px approves it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.test_html_checks import AXE_JS, _axe
from tests.factories import make_user
from tests.portal.selfcare_data import make_clinic

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_profile_on_a_phone_and_the_change_queue_on_a_desktop(app, new_context, live_server, sign_in):
    clinic = make_clinic()
    front_desk = make_user(clinic.tenant, "front_desk")
    page = new_context(viewport=PHONE).new_page()
    sign_in(page, clinic.user.email)
    page.goto(f"{live_server}/portal/profile")
    assert page.evaluate(OVERFLOW) <= 0, "the profile scrolls sideways at 390 px"
    axe = AXE_JS.read_text()
    assert _axe(page, "patient-profile", axe) == []
    page.evaluate("() => { window.notReloaded = true; }")
    page.get_by_label("City").fill("Springfield")
    page.get_by_role("button", name="Save contact details").click()
    expect(page.locator("#contact [role=status]")).to_contain_text("saved")
    assert page.evaluate("() => window.notReloaded") is True
    page.get_by_label("Phone", exact=True).first.fill("call me")
    page.get_by_role("button", name="Save contact details").click()
    expect(page.locator("#phone-error")).to_contain_text("phone number")
    page.get_by_text("Ask the clinic to change these").click()
    page.get_by_label("Last name").fill("Okafor")
    page.get_by_role("button", name="Send the request").click()
    expect(page.locator("#identity")).to_contain_text("waiting for the clinic")
    assert page.evaluate(OVERFLOW) <= 0

    staff = new_context(viewport=DESKTOP).new_page()
    sign_in(staff, front_desk.email)
    staff.goto(f"{live_server}/care/change-requests")
    assert staff.evaluate(OVERFLOW) <= 0, "the queue scrolls sideways at 1280 px"
    assert _axe(staff, "front_desk-change-requests", axe) == []
    expect(staff.get_by_text("Okafor")).to_be_visible()
    staff.get_by_role("button", name="Approve and change the profile").click()
    expect(staff.get_by_text("Decided; the patient is told.")).to_be_visible()
