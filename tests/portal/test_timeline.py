"""The portal home and timeline: the share source, the page, a cursor bound to its patient."""

from __future__ import annotations

from tests.factories import login, make_patient, make_portal_user, make_tenant
from tests.sharing.factories import make_share


def test_home_and_timeline_show_the_patients_shares_and_refuse_a_cursor_made_up(client):
    tenant = make_tenant()
    patient = make_patient(tenant, care_stage="onboarding")
    user = make_portal_user(patient)
    make_share(patient, recipient_name="Dr. Ortiz")
    login(client, user.email)
    home = client.get("/portal").get_data(as_text=True)
    assert "What needs you" in home and "Nothing needs you right now" in home
    assert "setting up your care" in home and "Shared your records with Dr. Ortiz" in home
    page = client.get("/portal/timeline")
    assert page.status_code == 200 and "Shared your records with Dr. Ortiz" in page.get_data(as_text=True)
    assert client.get("/portal/timeline?after=made-up").status_code == 400
