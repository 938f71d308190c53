"""A doctor and an admin work through the clinic in a real browser, and a patient joins the portal.

These tests prove what the unit tests cannot: htmx swaps fragments (no page load) and pushes the URL,
every htmx interaction also works with JavaScript off, the CSP holds without breaking any page, and
an emailed link can be followed from the outbox to the portal.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from healthcrm.audit.services import verify_chain
from healthcrm.extensions import db
from tests.factories import PASSWORD, make_portal_user

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new portal passphrase"
PAGE_MARKER = "window.__samePage"


def _mark_page(page) -> None:
    """Put a value on `window`: it survives an htmx swap and is gone after a full page load."""
    page.evaluate(f"{PAGE_MARKER} = 'still here'")


def _assert_same_page(page) -> None:
    assert page.evaluate(f"typeof {PAGE_MARKER} === 'undefined' ? null : {PAGE_MARKER}") == "still here", (
        "the page was reloaded instead of swapping a fragment"
    )


def _expect_fragment(page):
    """Wait for the next htmx GET of the patient list; the answer must be the fragment, not a page."""
    return page.expect_response(
        lambda response: "/patients?" in response.url and response.request.headers.get("hx-request") == "true"
    )


def _assert_is_fragment(response) -> None:
    assert response.status == 200
    body = response.text()
    assert "<html" not in body and "<table" in body, "htmx got a whole page instead of the results block"


def test_doctor_edits_admin_invites_patient_joins_portal(
    page, live_server, clinic, sign_in, console, drain_jobs
):
    # The doctor signs in with the form and lands on the patient list.
    sign_in(page, clinic.doctor.email)
    expect(page).to_have_url(f"{live_server}/patients")
    results = page.locator("#patient-results")
    expect(results).to_contain_text("Showing 1–20 of 30 patients")

    # Typing filters the list in place: a fragment is swapped and the URL is pushed.
    _mark_page(page)
    with _expect_fragment(page) as answer:
        page.get_by_label("Search by name, MRN, email or phone").fill("son")
    _assert_is_fragment(answer.value)
    expect(page).to_have_url(re.compile(r"/patients\?q=son"))
    expect(results).to_contain_text("Showing 1–20 of 24 patients matching “son”")
    expect(results).not_to_contain_text("Garcia")
    _assert_same_page(page)

    # Next page is a fragment too, and keeps the search.
    with _expect_fragment(page) as answer:
        results.get_by_role("link", name="Next →").click()
    _assert_is_fragment(answer.value)
    expect(page).to_have_url(re.compile(r"/patients\?.*page=2"))
    expect(page).to_have_url(re.compile(r"q=son"))
    expect(results).to_contain_text("Page 2 of 2")
    expect(results).to_contain_text("Showing 21–24 of 24")
    _assert_same_page(page)

    # The pushed URLs are real pages: Back and Forward load them in full (no history cache of patient data).
    page.go_back()
    expect(results).to_contain_text("Showing 1–20 of 24 patients matching “son”")
    expect(page.get_by_label("Search by name, MRN, email or phone")).to_have_value("son")
    page.wait_for_load_state()  # htmx listens for Forward once its deferred script has run
    page.go_forward()
    expect(results).to_contain_text("Showing 21–24 of 24")

    # Open the first patient of page 2 and change the phone number.
    patient = clinic.sorted_patients("son")[20]
    old_phone = patient.phone
    results.get_by_role("link", name=f"{patient.last_name}, {patient.first_name}").click()
    expect(page).to_have_url(f"{live_server}/patients/{patient.id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(patient.full_name)
    page.get_by_role("link", name="Edit profile").click()
    expect(page).to_have_url(f"{live_server}/patients/{patient.id}/edit")
    phone = page.get_by_role("group", name="Contact", exact=True).get_by_label("Phone")
    expect(phone).to_have_value(old_phone)
    phone.fill("(555) 987-6543")
    page.get_by_role("button", name="Save profile").click()
    expect(page).to_have_url(f"{live_server}/patients/{patient.id}")
    expect(page.get_by_role("status")).to_contain_text("Profile saved.")
    contact = page.get_by_role("region", name="Contact", exact=True)
    expect(contact).to_contain_text("(555) 987-6543")
    expect(contact).not_to_contain_text(old_phone)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")

    # The admin invites the patient to the portal from the profile.
    sign_in(page, clinic.admin.email)
    page.goto(f"{live_server}/patients/{patient.id}")
    portal = page.get_by_role("region", name="Patient portal")
    expect(portal.get_by_label("Email for the portal")).to_have_value(patient.email)
    portal.get_by_role("button", name="Invite to the portal").click()
    expect(page.get_by_role("status")).to_contain_text(f"Portal invitation sent to {patient.email}")
    expect(page.get_by_role("region", name="Patient portal")).to_contain_text("Invited")
    drain_jobs()

    # The invitation is in the outbox, and its link can be clicked.
    nav = page.get_by_role("navigation", name="Main")
    nav.locator("summary", has_text="Admin").click()  # the admin pages are under one menu
    nav.get_by_role("link", name="Outbox").click()
    outbox_row = page.get_by_role("row").filter(has_text=patient.email)
    expect(outbox_row).to_have_count(1)
    outbox_row.get_by_role("link", name="Your HealthCRM account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your HealthCRM account")
    invitation_link = page.locator("pre.mail a").filter(has_text=f"{live_server}/invitation/")
    no_link = "the email has no clickable link to this server (is PUBLIC_URL the live server's?)"
    expect(invitation_link, no_link).to_have_count(1)
    invitation_link.click()

    # The patient chooses a password and lands on the portal.
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server)}/invitation/"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome to {clinic.tenant.name}")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set my password").click()
    expect(page).to_have_url(f"{live_server}/portal")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {patient.first_name}")
    expect(page.get_by_role("status")).to_contain_text("Welcome! Your password is set.")
    expect(page.get_by_role("region", name="Your details")).to_contain_text("(555) 987-6543")

    # Nothing the browser did broke the CSP or raised a JavaScript error, and the audit chain holds.
    console.assert_clean()
    db.session.rollback()
    report = verify_chain()
    assert report.intact, report.reason
    assert report.chains.get(clinic.tenant.id, 0) >= 10


def test_search_and_pages_work_without_javascript(new_context, live_server, clinic, sign_in):
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, clinic.doctor.email)
    page.goto(f"{live_server}/patients")

    page.get_by_label("Search by name, MRN, email or phone").fill("son")
    page.get_by_label("Care stage").select_option("active")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/patients\?q=son&stage=active$"))
    expected = [p for p in clinic.sorted_patients("son") if p.care_stage == "active"]
    results = page.locator("#patient-results")
    expect(results).to_contain_text(f"of {len(expected)} patients matching “son”")
    expect(results.get_by_role("row")).to_have_count(len(expected) + 1)

    page.get_by_label("Search by name, MRN, email or phone").fill("son")
    page.get_by_label("Care stage").select_option("")
    page.get_by_label("Search by name, MRN, email or phone").press("Enter")
    expect(page).to_have_url(re.compile(r"/patients\?q=son&stage=$"))
    expect(results).to_contain_text("Showing 1–20 of 24")

    results.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(results).to_contain_text("Showing 21–24 of 24")
    last = clinic.sorted_patients("son")[-1]
    expect(results.get_by_role("link", name=f"{last.last_name}, {last.first_name}")).to_be_visible()
    results.get_by_role("link", name="← Previous").click()
    expect(results).to_contain_text("Showing 1–20 of 24")


STAFF_PAGES = [
    "/patients",
    "/patients?q=son&page=2",
    "/patients/{patient}",
    "/patients/{patient}/edit",
    "/patients/new",
    "/users",
    "/audit",
    "/outbox",
    "/jobs",
    "/account/security",
    "/account/mfa/setup",
]
PORTAL_PAGES = ["/portal", "/account/security"]


# Inline styles and scripts, event handler attributes and hx-on (which needs eval) in the rendered page.
INLINE_CODE = """() => {
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    if (el.hasAttribute("style")) found.push(el.tagName + "[style]");
    if (el.tagName === "SCRIPT" && !el.src) found.push("inline <script>");
    for (const attr of el.getAttributeNames()) {
      if (/^(on|hx-on|data-hx-on)/.test(attr)) found.push(el.tagName + "[" + attr + "]");
    }
  }
  return found;
}"""


def _assert_strict_csp(response) -> None:
    policy = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert re.fullmatch(r"'self' 'nonce-[A-Za-z0-9_-]{16,}'", directives["script-src"])
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


def _visit_without_inline_code(page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url} answered {response and response.status}"
    _assert_strict_csp(response)
    inline = page.evaluate(INLINE_CODE)
    assert inline == [], f"{url} has inline code the CSP blocks or should not need: {inline}"


def test_every_page_keeps_a_strict_csp(page, new_context, live_server, clinic, sign_in, console):
    patient = clinic.patients[0]
    sign_in(page, clinic.admin.email)
    for path in STAFF_PAGES:
        _visit_without_inline_code(page, live_server + path.format(patient=patient.id))
    # htmx itself must work under the CSP: a search swaps the results.
    page.goto(f"{live_server}/patients")
    page.get_by_label("Search by name, MRN, email or phone").fill("Garcia")
    expect(page.locator("#patient-results")).to_contain_text("Showing 1–1 of 1 patient matching “Garcia”")

    portal_page = new_context().new_page()
    sign_in(portal_page, make_portal_user(clinic.patients[1]).email, PASSWORD)
    for path in PORTAL_PAGES:
        _visit_without_inline_code(portal_page, live_server + path)
    console.assert_clean()

    # The browser really enforces it: a script injected into the page does not run.
    with pytest.raises(PlaywrightError, match="Content Security Policy"):
        portal_page.add_script_tag(content="window.__injected = true;")
    assert portal_page.evaluate("window.__injected === undefined")
