"""A patient on a phone shares two lab-heavy visits with a passcode and email verification: the form opens
in place, a refused passcode keeps what was typed, the link shows once with a working copy button and a QR
code, the list updates itself, and the link can be revoked in place. Staff and the admin overview at
desktop width. Screenshots in test-artifacts/screenshots/shares-*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from healthcrm.extensions import db
from healthcrm.sharing.models import Notification
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_shared_patient

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
PASSCODE = "river-stone-42"
RECIPIENT = "ana.ruiz@hospital.example.com"


@pytest.fixture
def lakeside(app):
    tenant = make_tenant("Lakeside Liver Clinic")
    domain = f"clinic{tenant.id}.example.com"
    doctor = make_user(tenant, "doctor", full_name="Dr. Sam Okafor", email=f"sam@{domain}")
    admin = make_user(tenant, "admin", full_name="Morgan Reyes", email=f"morgan@{domain}")
    patient = make_shared_patient(tenant, doctor)
    return {
        "tenant": tenant,
        "doctor": doctor,
        "admin": admin,
        "patient": patient,
        "portal": make_portal_user(patient),
    }


def _shoot(page, name: str, width: int, too_wide: list[str]) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": Playwright hides the caret with style="" on every input, which htmx would then copy
    # onto the swapped-in form (an inline style the CSP refuses).
    page.screenshot(path=str(SCREENSHOTS / f"shares-{name}-{width}.png"), full_page=True, caret="initial")
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"shares-{name} at {width} px is {overflow} px wider than the screen")


def test_a_patient_shares_two_records_on_a_phone(
    new_context, live_server, sign_in, console, lakeside, drain_jobs, outbox_dir
):
    too_wide: list[str] = []
    console.allow("status of 422")  # the refused passcode
    context = new_context(viewport=PHONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page = context.new_page()
    sign_in(page, lakeside["portal"].email)
    page.get_by_role("link", name="Your shared records").click()
    expect(page.get_by_role("heading", name="Shared records", exact=True)).to_be_visible()
    expect(page.get_by_text("Nothing shared yet.")).to_be_visible()

    # The form opens in place (htmx), on the list's page: once htmx has started (on a loaded machine the
    # link can be clicked first, and then it is a plain link, as it should be without JavaScript).
    page.wait_for_function("() => window.htmx !== undefined")
    page.get_by_role("link", name="Share my records").click()
    panel = page.locator("#share-form")
    expect(panel.get_by_role("heading", name="Share my records")).to_be_visible()
    assert page.url.endswith("/portal/shares")
    # The visits to choose from show only once "Chosen visits" is picked.
    visit = panel.get_by_label(re.compile("Fatigue and itching"))
    expect(visit).to_be_hidden()
    panel.get_by_label("Name", exact=True).fill("Dr. Ana Ruiz")
    panel.get_by_label("Email", exact=True).fill(RECIPIENT)
    panel.get_by_label("Chosen visits").check()
    visit.check()
    panel.get_by_label(re.compile("Follow-up of liver tests")).check()
    panel.get_by_label("Passcode (optional)").fill("12345")
    panel.get_by_label("Verify the recipient by email").check()
    _shoot(page, "form", 390, too_wide)

    # A passcode that is too short: nothing is made, the form says why and keeps the rest.
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        panel.get_by_role("button", name="Create the link").click()
    assert refused.value.status == 422
    # The fault beside its field and in the summary at the top, whose link takes the person to the field.
    expect(panel.locator("#passcode-error")).to_have_text("A passcode has at least 6 characters.")
    panel.get_by_role("link", name="A passcode has at least 6 characters.").click()
    expect(panel.get_by_label("Passcode (optional)")).to_be_focused()
    expect(panel.get_by_label("Name", exact=True)).to_have_value("Dr. Ana Ruiz")
    expect(panel.get_by_label(re.compile("Follow-up of liver tests"))).to_be_checked()
    expect(panel.get_by_label("Verify the recipient by email")).to_be_checked()
    panel.get_by_label("Passcode (optional)").scroll_into_view_if_needed()
    _shoot(page, "form-errors", 390, too_wide)

    panel.get_by_label("Passcode (optional)").fill(PASSCODE)
    panel.get_by_role("button", name="Create the link").click()
    expect(panel.get_by_role("heading", name="Your link is ready")).to_be_visible()
    link = panel.get_by_label("Link", exact=True)
    url = link.input_value()
    assert re.fullmatch(re.escape(live_server) + r"/s/[A-Za-z0-9_-]{43}", url), url
    qr = panel.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.naturalWidth") > 0
    panel.get_by_role("button", name="Copy link").click()
    expect(panel.get_by_role("button", name="Copied")).to_be_visible()
    expect(panel.get_by_text("The link is on your clipboard.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == url
    expect(panel.get_by_text(f"Their own link is being emailed to {RECIPIENT}")).to_be_visible()

    # The list below updated itself with the new link.
    card = page.locator("#shares .share-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Dr. Ana Ruiz")
    expect(card).to_contain_text("2 chosen records")
    expect(card).to_contain_text("passcode · email code")
    expect(card.locator(".badge")).to_have_text("Active")
    _shoot(page, "created", 390, too_wide)

    # Only the email went out; the link itself is never shown again.
    drain_jobs()
    assert len(list(outbox_dir.glob("*.eml"))) == 1
    page.reload()
    assert "/s/" not in page.content()
    card.locator("summary", has_text="Access log").click()
    expect(card.get_by_text("Nobody has used this link yet.")).to_be_visible()
    _shoot(page, "list", 390, too_wide)

    # Revoke in place, after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Revoke").click()
    expect(card.locator(".badge")).to_have_text("Revoked")
    expect(card.get_by_text("Revoked: the link no longer opens.")).to_be_visible()
    expect(card.get_by_role("button", name="Send again")).to_have_count(0)

    assert not too_wide, "\n".join(too_wide)
    console.assert_clean()


def test_share_pages_at_desktop_width(new_context, live_server, sign_in, console, lakeside):
    too_wide: list[str] = []
    console.allow("status of 422")  # the refused date
    patient = lakeside["patient"]
    portal = lakeside["portal"]
    for text in (
        "Dr. Ana Ruiz opened the records you shared.",
        "Dr. Lee's link was paused after wrong passcodes.",
    ):
        db.session.add(Notification(tenant_id=portal.tenant_id, user_id=portal.id, text=text))
    db.session.commit()
    page = new_context(viewport=DESKTOP).new_page()
    sign_in(page, portal.email)
    notices = page.locator("#notifications")
    expect(notices).to_contain_text("2 new")
    _shoot(page, "portal-home", 1280, too_wide)
    notices.locator(".notification").first.get_by_role("button", name="Mark as read").click()
    expect(notices).to_contain_text("1 new")
    expect(notices).not_to_contain_text("paused")
    notices.get_by_role("button", name="Mark as read").click()
    expect(page.locator("#notifications")).to_be_empty()
    page.goto(f"{live_server}/portal/shares")
    page.get_by_role("link", name="Share my records").click()
    panel = page.locator("#share-form")
    panel.get_by_label("Name", exact=True).fill("Dr. Ana Ruiz")
    panel.get_by_label("Email", exact=True).fill(RECIPIENT)
    panel.get_by_role("button", name="Add another").click()
    expect(panel.locator(".recipient-row")).to_have_count(2)
    panel.locator(".recipient-row").nth(1).get_by_label("Name", exact=True).fill("Dr. Ben Carter")
    panel.locator(".recipient-row").nth(1).get_by_label("Email", exact=True).fill(
        "ben.carter@clinic.example.com"
    )
    panel.get_by_label("Chosen kinds of records").check()
    panel.get_by_label("Lab results").check()
    panel.get_by_label("Allergies").check()
    panel.get_by_label("Until a date").check()
    expect(panel.get_by_label("Until", exact=True)).to_be_visible()
    _shoot(page, "form", 1280, too_wide)
    panel.get_by_label("Until", exact=True).fill("2099-01-01")
    panel.get_by_role("button", name="Create the link").click()
    expect(panel.locator("#until-error")).to_have_text("A link can last at most 365 days.")
    expect(panel.get_by_role("link", name="A link can last at most 365 days.")).to_be_visible()
    panel.get_by_label("90 days").check()
    panel.get_by_role("button", name="Create the link").click()
    expect(panel.get_by_role("heading", name="Your 2 links are ready")).to_be_visible()
    expect(page.locator("#shares .share-card")).to_have_count(2)
    _shoot(page, "created", 1280, too_wide)

    staff = new_context(viewport=DESKTOP).new_page()
    sign_in(staff, lakeside["admin"].email)
    staff.goto(f"{live_server}/patients/{patient.id}")
    staff.get_by_role("link", name="Shared records", exact=True).click()
    expect(staff.get_by_role("heading", name=f"{patient.full_name}: shared records")).to_be_visible()
    expect(staff.locator(".share-card")).to_have_count(2)
    staff.locator(".share-card").first.locator("summary", has_text="Extend").click()
    _shoot(staff, "staff-list", 1280, too_wide)
    staff.goto(f"{live_server}/admin/sharing")
    expect(staff.get_by_role("heading", name="Sharing overview")).to_be_visible()
    _shoot(staff, "overview", 1280, too_wide)
    staff.set_viewport_size(PHONE)
    _shoot(staff, "overview", 390, too_wide)

    assert not too_wide, "\n".join(too_wide)
    console.assert_clean()
