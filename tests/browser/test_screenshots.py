"""Screenshots of the main pages at desktop (1280 px) and phone (390 px) widths, for people to look at.

They land in test-artifacts/screenshots/ (git-ignored). The test also checks what a person would notice
first on a phone: nothing is wider than the screen, so no page scrolls sideways.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from healthcrm.accounts import services as accounts
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.mail.services import outbox_entries
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_portal_user

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
# Page width minus viewport width: anything above this means the page scrolls sideways.
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _shoot(page, name: str, width: int, too_wide: list[str]) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"{name} at {width} px is {overflow} px wider than the screen")


def test_screenshots_of_main_pages(new_context, live_server, clinic, sign_in, console, drain_jobs):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    patient = clinic.sorted_patients()[0]
    patient.address_line, patient.city, patient.state = "12 Elm Street", "Springfield", "IL"
    patient.postal_code = "62701"
    db.session.commit()
    portal_patient = clinic.patients[3]
    portal_user = make_portal_user(portal_patient)
    invited = clinic.patients[5]
    admin = Actor(tenant_id=clinic.tenant.id, user_id=clinic.admin.id, role="admin")
    accounts.invite_patient(admin, invited.id, invited.email)
    drain_jobs()
    message = outbox_entries(clinic.tenant.id)[0].name
    staff_pages = {
        "patient-list": "/patients",
        "patient-profile": f"/patients/{patient.id}",
        "patient-edit": f"/patients/{patient.id}/edit",
        "users": "/users",
        "outbox": "/outbox",
        "outbox-message": f"/outbox/{message}",
        "mfa-setup": "/account/mfa/setup",
        "security": "/account/security",
        "audit-log": "/audit",
        "jobs": "/jobs",
    }

    too_wide: list[str] = []
    for viewport in (DESKTOP, PHONE):
        width = viewport["width"]
        page = new_context(viewport=viewport).new_page()
        page.goto(f"{live_server}/login")
        _shoot(page, "login", width, too_wide)
        sign_in(page, clinic.admin.email)
        for name, path in staff_pages.items():
            page.goto(live_server + path)
            _shoot(page, name, width, too_wide)
        # An invalid form comes back with its errors in place (a 422, which the browser logs).
        console.allow("status of 422")
        page.goto(f"{live_server}/patients/{patient.id}/edit")
        page.get_by_label("First name").fill("")
        page.get_by_role("button", name="Save profile").click()
        expect(page.get_by_role("alert").first).to_contain_text("Please correct the fields marked below")
        _shoot(page, "patient-edit-errors", width, too_wide)

        portal = new_context(viewport=viewport).new_page()
        sign_in(portal, portal_user.email)
        expect(portal.get_by_role("heading", level=1)).to_have_text(f"Hello, {portal_patient.first_name}")
        _shoot(portal, "portal-home", width, too_wide)
    assert not too_wide, "pages scroll sideways:\n" + "\n".join(too_wide)
    console.assert_clean()
