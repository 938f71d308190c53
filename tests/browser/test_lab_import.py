"""The lab CSV import in a real browser: once the preview's save button is pressed it is disabled, so a
second click cannot send the file again (the server would import it only once anyway)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.records.models import LabResult
from tests.factories import make_patient, make_tenant, make_user

pytestmark = pytest.mark.browser

CSV = b"code,name,value,unit,ref_low,ref_high,observed_at\n718-7,,13.5,g/dL,12,15.5,2025-03-14 09:30\n"


def test_save_button_is_disabled_once_pressed(page, live_server, sign_in, console):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse", email=f"nia@clinic{tenant.id}.example.com")
    patient = make_patient(tenant)
    sign_in(page, nurse.email)
    page.goto(f"{live_server}/patients/{patient.id}/labs/import")
    page.get_by_label("CSV file", exact=True).set_input_files(
        files=[{"name": "labs.csv", "mimeType": "text/csv", "buffer": CSV}]
    )
    page.get_by_role("button", name="Preview").click()
    save = page.get_by_role("button", name="Save 1 result")
    expect(save).to_be_enabled()

    # The server answers the confirm with 204 No Content here, so the page stays and its button can be seen.
    sent = []

    def no_content(route) -> None:
        sent.append(route.request.method)
        route.fulfill(status=204)

    page.route(f"{live_server}/patients/{patient.id}/labs/import", no_content)
    save.click()
    expect(save).to_be_disabled()
    save.dispatch_event("click")
    page.wait_for_timeout(200)
    assert sent == ["POST"], "the disabled button sent the file again"
    assert db.session.scalar(select(func.count()).select_from(LabResult)) == 0
    console.assert_clean()
