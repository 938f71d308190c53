"""The provider's file page (a report PDF, an ultrasound image) and the patient's access log, at 1280 and
390 px: the watermark readable over the content, the log by visit. Screenshots land in
test-artifacts/screenshots/share-screens-*.png for people to look at."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.sharing.models import ShareEvent
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.factories import make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_share, make_shared_patient
from tests.sharing.test_provider import _attach, _finalized, _link
from tests.sharing.test_watermark import _report_pdf

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)


def _ultrasound_jpeg() -> bytes:
    """A liver ultrasound as the scanner saves it: speckle in a cone on black, labels in a corner."""
    rng = np.random.default_rng(3)
    pixels = np.zeros((600, 800), np.uint8)
    ys, xs = np.mgrid[0:600, 0:800]
    cone = (np.abs(np.arctan2(xs - 400, ys + 40)) < 0.62) & (ys > 50) & (np.hypot(xs - 400, ys + 40) < 620)
    pixels[cone] = np.clip(rng.normal(105, 45, cone.sum()), 0, 255)
    image = Image.fromarray(pixels).convert("RGB")
    ImageDraw.Draw(image).text((10, 10), "LIVER RT  12.3 cm\nC5-1  4.0 MHz", fill="white")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _wait_for_images(page, selector: str) -> None:
    images = page.locator(selector)
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=images.nth(index).element_handle()
        )
    page.evaluate("window.scrollTo(0, 0)")


def _shoot(page, name: str, too_wide: list[str]) -> None:
    width = page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / f"share-screens-{name}-{width}.png"), full_page=True)
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"{name} at {width} px is {overflow} px wider than the screen")


def test_the_file_pages_and_the_access_log_at_desktop_and_phone_widths(
    new_context, live_server, console, sign_in
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tenant = make_tenant("Lakeside Liver Clinic")
    patient = make_shared_patient(tenant, make_user(tenant, "doctor", full_name="Dr. Ana Ruiz"))
    portal = make_portal_user(patient)
    visit = _finalized(patient)[0]
    report = _attach(visit, "Ultrasound report.pdf", _report_pdf(2), "pdf", "application/pdf")
    scan = _attach(visit, "Liver ultrasound.jpg", _ultrasound_jpeg(), "jpeg", "image/jpeg")
    share = make_share(patient, recipient_name="Dr. Grace Hopper")
    # An earlier visit from a phone, for the access log to group.
    earlier = utcnow() - timedelta(days=1)
    db.session.add_all(
        ShareEvent(
            tenant_id=tenant.id,
            share_id=share.id,
            kind=kind,
            detail=detail,
            ip="203.0.113.7",
            user_agent=IPHONE,
            occurred_at=earlier + timedelta(minutes=minute),
        )
        for minute, (kind, detail) in enumerate(
            [("open", None)] + [("view", "Summary")] * 3 + [("view", "Lab results")] * 6 + [("view", "Files")]
        )
    )
    db.session.commit()
    link = live_server + _link(share)
    too_wide: list[str] = []

    page = new_context(viewport=DESKTOP).new_page()
    page.goto(link)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/summary$"))
    for width in (DESKTOP, PHONE):
        page.set_viewport_size(width)
        page.goto(f"{link}/files/{report.id}")
        expect(page.get_by_role("img", name=re.compile("Page 2 of Ultrasound report.pdf"))).to_be_attached()
        _wait_for_images(page, ".share-page img")
        _shoot(page, "file-pdf", too_wide)
        page.goto(f"{link}/files/{scan.id}")
        _wait_for_images(page, ".share-page img")
        _shoot(page, "file-image", too_wide)
    # The confidentiality strip is in a landmark of its own.
    expect(page.get_by_role("complementary", name="Confidentiality")).to_contain_text("Confidential.")

    patient_page = new_context(viewport=DESKTOP).new_page()
    sign_in(patient_page, portal.email)
    for width in (DESKTOP, PHONE):
        patient_page.set_viewport_size(width)
        patient_page.goto(f"{live_server}/shares/{share.id}")
        expect(patient_page.locator("tbody.access-visit")).to_have_count(2)
        expect(patient_page.locator("tbody.access-visit").first).to_contain_text("Visit 2")
        _shoot(patient_page, "access-log", too_wide)

    assert not too_wide, "\n".join(too_wide)
    console.assert_clean()
