"""A patient on a phone previews a share before sending it: the preview swaps in below the form (htmx),
fits the screen, and nothing is made. Screenshot in test-artifacts/screenshots/shares-preview-390.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.sharing.models import ShareLink
from tests.browser.conftest import ARTIFACTS, PHONE
from tests.browser.test_share_manage import lakeside  # noqa: F401

pytestmark = pytest.mark.browser

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_a_patient_previews_a_share_on_a_phone(new_context, live_server, sign_in, console, lakeside):  # noqa: F811
    page = new_context(viewport=PHONE).new_page()
    sign_in(page, lakeside["portal"].email)
    page.goto(f"{live_server}/portal/shares/new")
    page.wait_for_function("() => window.htmx !== undefined")
    form = page.locator("#share-form")
    form.get_by_label("Name", exact=True).fill("Dr. Ana Ruiz")
    form.get_by_label("Email", exact=True).fill("ana.ruiz@hospital.example.com")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.get_by_role("button", name="Preview").click()
    assert answer.value.status == 200 and answer.value.request.headers.get("hx-request") == "true"
    preview = page.locator("#share-preview")
    expect(preview.get_by_text("Preview — this is what the recipient will see")).to_be_visible()
    expect(preview.get_by_role("heading", name="Lab results", exact=True)).to_be_visible()
    expect(preview.get_by_text("Follow-up of liver tests").first).to_be_visible()
    expect(form.get_by_label("Name", exact=True)).to_have_value("Dr. Ana Ruiz")  # the form kept
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / "screenshots" / "shares-preview-390.png"), full_page=True, caret="initial"
    )
    assert page.evaluate(OVERFLOW) <= 0
    assert db.session.scalar(select(func.count()).select_from(ShareLink)) == 0
