"""Self-service at 390 px: each portal page fits the phone (no horizontal scroll); today's dose is marked
without a reload (htmx swaps the cell)."""

from __future__ import annotations

from tests.browser.conftest import PHONE
from tests.portal.selfcare_data import make_clinic

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
PAGES = ("/portal/refills", "/portal/refills/new", "/portal/symptoms", "/portal/doses", "/portal/care-plan")


def test_self_service_pages_fit_a_phone_and_a_dose_is_marked_in_place(app, new_context, live_server, sign_in):
    clinic = make_clinic()
    page = new_context(viewport=PHONE).new_page()
    sign_in(page, clinic.user.email)
    for path in PAGES:
        page.goto(f"{live_server}{path}")
        assert page.evaluate(OVERFLOW) <= 0, f"{path} scrolls sideways at 390 px"
    page.goto(f"{live_server}/portal/doses")
    page.evaluate("() => { window.notReloaded = true; }")
    page.get_by_role("button", name="Taken Lisinopril").first.click()
    page.locator(".dose-taken").first.wait_for()
    assert page.evaluate("() => window.notReloaded") is True
