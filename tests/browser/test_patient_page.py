"""The patient page in a real browser, for a doctor and for front desk, at 1280 and 390 px: the doctor's
opens with the clinical summary, front desk's shows the details only, and neither scrolls sideways.
Screenshots land in test-artifacts/screenshots/patient-page-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_tenant, make_user
from tests.sharing.factories import make_shared_patient

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_the_patient_page_for_a_doctor_and_for_front_desk(new_context, live_server, sign_in, console):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tenant = make_tenant("Lakeside Liver Clinic")
    domain = f"clinic{tenant.id}.example.com"
    doctor = make_user(tenant, "doctor", full_name="Dr. Ana Ruiz", email=f"ana@{domain}")
    desk = make_user(tenant, "front_desk", full_name="Fran Desk", email=f"fran@{domain}")
    patient = make_shared_patient(tenant, doctor)
    too_wide = []
    for viewport in (DESKTOP, PHONE):
        width = viewport["width"]
        for role, user in (("doctor", doctor), ("front-desk", desk)):
            page = new_context(viewport=viewport).new_page()
            sign_in(page, user.email)
            page.goto(f"{live_server}/patients/{patient.id}")
            expect(page.get_by_role("heading", level=1)).to_contain_text(patient.last_name)
            summary = page.get_by_role("heading", name="Clinical summary")
            if role == "doctor":
                expect(summary).to_be_visible()
                first = page.locator("h2").first
                expect(first).to_have_text("Clinical summary")
            else:
                expect(summary).to_have_count(0)
                expect(page.get_by_role("heading", name="Demographics")).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / f"patient-page-{role}-{width}.png"), full_page=True)
            if page.evaluate(OVERFLOW) > 0:
                too_wide.append(f"{role} at {width}")
    assert not too_wide, too_wide
    console.assert_clean()
