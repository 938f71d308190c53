"""An admin schedules the clinic export in a real browser: a day the form refuses comes back in place with
why, a good one shows the next export on the clinic's clock; the page fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE

pytestmark = pytest.mark.browser

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _shoot(page, name: str) -> None:
    # caret="initial": hiding the caret leaves style="" on the inputs, which htmx's settle would copy onto
    # the swapped form (an inline style the CSP refuses; seen only under Playwright).
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True, caret="initial")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_admin_schedules_the_monthly_export(new_context, live_server, clinic, sign_in, console, viewport):
    console.allow("status of 422")  # the refused form, answered 422 and swapped in place
    page = new_context(viewport=viewport).new_page()
    sign_in(page, clinic.admin.email)
    page.goto(f"{live_server}/admin/export")
    schedule = page.locator("#schedule")
    expect(schedule.locator("#next-export")).to_have_text("None: the schedule is off.")

    schedule.get_by_role("radio", name="Monthly").check()
    schedule.get_by_label("Day of the month (monthly)").fill("30")
    schedule.get_by_role("button", name="Save the schedule").click()
    expect(schedule.get_by_role("alert")).to_contain_text("from 1 to 28")
    expect(schedule.get_by_label("Day of the month (monthly)")).to_have_attribute("aria-invalid", "true")
    width = viewport["width"]
    _shoot(page, f"clinic-export-refused-{width}")

    schedule = page.locator("#schedule")  # swapped: find it again
    schedule.get_by_label("Day of the month (monthly)").fill("28")
    schedule.get_by_label("At (clinic time)").select_option("23")
    schedule.get_by_role("button", name="Save the schedule").click()
    expect(page.locator("#schedule")).to_contain_text("Export schedule saved.")
    expect(page.locator("#next-export")).to_contain_text("23:00 (America/Chicago)")
    expect(page.locator("#schedule")).to_contain_text("Monthly, on the 28th at 23:00")
    _shoot(page, f"clinic-export-{width}")
    assert page.evaluate(OVERFLOW) <= 0, f"/admin/export scrolls sideways at {width} px"
    console.assert_clean()
