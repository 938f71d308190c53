"""The labs flowsheet in a real browser, on a liver patient seen twelve times (seven tests each time, as the
demo's liver patients are): the staff labs page and the provider's labs tab stay short at 1280 and 390 px,
a test's chart opens on demand, the panel filter works, and phones get one card per test.

Heights before the flowsheet (one chart and one table per test, oldest first), with this data:
staff labs 1280 px wide: 6,666 px tall, 390 px: 20,723 px; provider's labs tab 1280: 5,554 px,
390: 17,171 px. With it: 1,468 / 3,375 (the add-results form is 1,900 of those) and 908 / 1,587.
Screenshots land in test-artifacts/screenshots/labs-*.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from healthcrm.clock import utcnow
from healthcrm.extensions import db
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_tenant, make_user
from tests.sharing.factories import add_lab, make_share, make_shared_patient
from tests.sharing.test_provider import _link

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
HEIGHT = "() => document.documentElement.scrollHeight"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
VISITS = 12
# (code, name, UCUM unit, low, high, first value, change per visit)
LIVER_LABS = (
    ("1975-2", "Bilirubin, total", "mg/dL", 0.1, 1.2, 0.9, 0.15),
    ("6301-6", "INR", "{INR}", 0.8, 1.1, 1.0, 0.04),
    ("2160-0", "Creatinine", "mg/dL", 0.6, 1.3, 0.9, 0.03),
    ("2951-2", "Sodium", "mmol/L", 135, 145, 139, -0.6),
    ("1751-7", "Albumin", "g/dL", 3.5, 5.0, 4.0, -0.08),
    ("1742-6", "ALT", "U/L", 7, 56, 40, 4),
    ("777-3", "Platelets", "10*3/uL", 150, 450, 210, -8),
)
# What the flowsheet may take, with room for fonts and a longer name or two (before: up to 20,723 px).
MAX_HEIGHT = {1280: 2_400, 390: 4_500}


def _liver_patient(tenant, doctor):
    patient = make_shared_patient(tenant, doctor)
    now = utcnow()
    for visit in range(VISITS):
        taken = now - timedelta(days=60 * (VISITS - visit) + 3)
        for code, name, unit, low, high, first, step in LIVER_LABS:
            add_lab(patient, code, name, round(first + step * visit, 2), unit, taken, low, high)
    db.session.commit()
    return patient


def _measure(page, name: str, heights: dict, too_wide: list[str]) -> None:
    width = page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / f"labs-{name}-{width}.png"), full_page=True)
    heights[f"{name} at {width}"] = page.evaluate(HEIGHT)
    if page.evaluate(OVERFLOW) > 0:
        too_wide.append(f"{name} at {width} px scrolls sideways")


def test_flowsheet_pages_stay_short_and_open_a_chart_on_demand(
    new_context, live_server, sign_in, console, capsys
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tenant = make_tenant("Lakeside Liver Clinic")
    doctor = make_user(tenant, "doctor", full_name="Dr. Ana Ruiz", email=f"ana@clinic{tenant.id}.example.com")
    patient = _liver_patient(tenant, doctor)
    share = make_share(patient)
    db.session.commit()
    provider_link = live_server + _link(share)
    heights: dict[str, int] = {}
    too_wide: list[str] = []

    for viewport in (DESKTOP, PHONE):
        page = new_context(viewport=viewport).new_page()
        sign_in(page, doctor.email)
        page.goto(f"{live_server}/patients/{patient.id}/labs")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Lab results")
        _measure(page, "staff", heights, too_wide)

        provider = new_context(viewport=viewport).new_page()
        provider.goto(provider_link)
        provider.get_by_role("button", name="Continue").click()
        provider.goto(provider_link + "/labs")
        expect(provider.get_by_role("heading", name="Lab results")).to_be_visible()
        _measure(provider, "provider", heights, too_wide)

        # A test's chart opens on demand (htmx, the address following), and the panel filter narrows the rows.
        page.goto(f"{live_server}/patients/{patient.id}/labs")
        page.get_by_role("link", name="Chart of Bilirubin, total").click()
        expect(page.locator("#lab-chart-panel canvas[data-drawn]")).to_have_count(1)
        expect(page.get_by_role("heading", name="Trend of Bilirubin, total")).to_be_visible()
        assert "chart=1975-2" in page.url
        _measure(page, "staff-chart", heights, too_wide)
        page.get_by_role("link", name="Kidney and electrolytes").click()
        expect(page.get_by_role("link", name="Kidney and electrolytes")).to_have_attribute(
            "aria-current", "true"
        )
        expect(page.locator("#flowsheet").get_by_text("Bilirubin, total")).to_have_count(0)
        expect(page.locator("#flowsheet .lab-name:visible", has_text="Creatinine")).to_have_count(1)

        provider.get_by_role("link", name="Chart of Platelets").click()
        expect(provider.locator("#lab-chart-panel canvas[data-drawn]")).to_have_count(1)
        _measure(provider, "provider-chart", heights, too_wide)

    with capsys.disabled():
        print("\nlab page heights:", heights)
    for name, height in heights.items():
        if "chart" in name:
            continue  # an open chart adds its height once
        width = int(name.rsplit(" ", 1)[1])
        assert height <= MAX_HEIGHT[width], f"{name} px is {height:,} px tall"
    assert not too_wide, "\n".join(too_wide)
    console.assert_clean()
