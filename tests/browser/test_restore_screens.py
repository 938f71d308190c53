"""The archived-file pages in a browser, at desktop (1280 px) and phone (390 px) widths: the staff's
"This file is archived" with its speeds and prices, the htmx swap to "being retrieved" after the click, the
patient's page, and a share's file "being retrieved" on the provider's side. Screenshots land in
test-artifacts/screenshots/ for people to look at; nothing may be wider than the screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from healthcrm.sharing.models import SCOPE_ALL
from healthcrm.storage_cost.prices import GB
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE
from tests.sharing.factories import make_share
from tests.sharing.test_provider import _link
from tests.storage_cost.restore_fixtures import clinic, local_slow, stored_file

__all__ = ["clinic", "local_slow"]

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _shoot(page, name: str, width: int, too_wide: list[str]) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    overflow = page.evaluate(OVERFLOW)
    if overflow > 0:
        too_wide.append(f"{name} at {width} px is {overflow} px wider than the screen")


def test_the_archived_file_pages_at_both_widths(
    new_context, live_server, clinic, local_slow, sign_in, console
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tenant, patient, record = clinic["tenant"].id, clinic["patient"].id, clinic["record"].id
    files = {
        width: stored_file(
            tenant_id=tenant, patient_id=patient, record_id=record, name=f"MRI liver 2023 ({width}).pdf",
            stored_size=2 * GB,
        )
        for width in (DESKTOP["width"], PHONE["width"])
    }  # fmt: skip
    shared = stored_file(
        tenant_id=tenant,
        patient_id=patient,
        record_id=record,
        name="Ultrasound report.pdf",
        storage_class="GLACIER",
    )
    document = stored_file(tenant_id=tenant, patient_id=patient, record_id=None, name="Letter from 2022.pdf")
    too_wide: list[str] = []
    for viewport in (DESKTOP, PHONE):
        width = viewport["width"]
        version = files[width]
        page = new_context(viewport=viewport).new_page()
        sign_in(page, clinic["doctor"].email)
        page.goto(f"{live_server}/files/{version.attachment_id}/versions/{version.id}/download")
        expect(page.get_by_role("heading", name="This file is archived")).to_be_visible()
        expect(page.get_by_text("ready in about 1 minute").first).to_be_visible()
        _shoot(page, "archived-file", width, too_wide)
        page.get_by_role("radio", name="Expedited").check()
        page.get_by_role("button", name="Retrieve the file").click()
        expect(page.get_by_role("heading", name="Being retrieved from the archive")).to_be_visible()
        assert "/archived" in page.url  # swapped in place
        _shoot(page, "archived-file-retrieving", width, too_wide)

        patient_page = new_context(viewport=viewport).new_page()
        sign_in(patient_page, clinic["portal"].email)
        patient_page.goto(f"{live_server}/portal/documents")
        patient_page.get_by_role("link", name="Get it back").click()
        expect(patient_page.get_by_role("heading", name="This file is archived")).to_be_visible()
        _shoot(patient_page, "portal-archived-document", width, too_wide)

    # The provider, at both widths: the share's archived file is being retrieved, the rest works.
    share = make_share(clinic["patient"], scope=SCOPE_ALL, allow_download=True)
    url = live_server + _link(share)
    for viewport in (DESKTOP, PHONE):
        width = viewport["width"]
        page = new_context(viewport=viewport).new_page()
        page.goto(url)
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(lambda address: address.endswith("/summary"))
        page.goto(f"{url}/files")
        expect(page.get_by_text("Being retrieved").first).to_be_visible()
        _shoot(page, "share-being-retrieved", width, too_wide)
        page.goto(f"{url}/files/{shared.attachment_id}")
        expect(page.get_by_text("It is being retrieved for you")).to_be_visible()
        _shoot(page, "share-file-being-retrieved", width, too_wide)
    assert not too_wide, too_wide
    assert document.attachment_id  # the patient's document was listed above
    console.assert_clean()
