"""Admins manage the clinic's people: roles, deactivation, and the rules that keep a clinic administrable."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from healthcrm.accounts.models import UserSession
from healthcrm.extensions import db
from tests.accounts.pages import duplicate_ids, flashes, signed_in
from tests.accounts.stored import audit_events
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

LAST_ADMIN = "The clinic needs at least one active administrator."


def _change_role(client, user_id: int, role: str):
    # The role form on /users is prefixed per row, its CSRF field too.
    data = {f"u{user_id}-role": role, f"u{user_id}-csrf_token": client.csrf_token()}
    return client.post(f"/users/{user_id}/role", data=data, follow_redirects=True)


def _page(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["doctor", "nurse", "coach", "front_desk"])
def test_only_admins_open_user_management(app, client, role):
    tenant = make_tenant()
    someone = make_user(tenant, role)
    colleague = make_user(tenant, "nurse")
    login(client, someone.email)
    assert client.get("/users").status_code == 403
    assert client.post(f"/users/{colleague.id}/deactivate", data={}).status_code == 403
    assert client.post("/clinic/security", data={"mfa_required_for_staff": "y"}).status_code == 403
    db.session.refresh(colleague)
    assert colleague.active and not tenant.mfa_required_for_staff


def test_patients_cannot_open_user_management(client):
    patient_user = make_portal_user(make_patient(make_tenant()))
    login(client, patient_user.email)
    assert client.get("/users").status_code == 403


def test_the_users_page_lists_the_clinic_staff_only(client):
    tenant, elsewhere = make_tenant(), make_tenant()
    admin = make_user(tenant, "admin", full_name="Alma Admin")
    make_user(tenant, "coach", full_name="Cole Coach")
    make_user(tenant, "nurse", full_name="Nina Former", active=False)
    make_portal_user(make_patient(tenant, first_name="Paula", last_name="Portal"))
    make_user(elsewhere, "doctor", full_name="Other Clinic Doctor")
    login(client, admin.email)
    page = _page(client.get("/users"))
    assert "Alma Admin" in page and "Cole Coach" in page and "Nina Former" in page
    assert "Deactivated" in page
    assert "Paula Portal" not in page and "Other Clinic Doctor" not in page
    assert duplicate_ids(page) == set()


def test_changing_a_role_signs_the_person_out_everywhere(app, client):
    tenant = make_tenant()
    admin, doctor = make_user(tenant, "admin"), make_user(tenant, "doctor")
    login(client, admin.email)
    doctor_browser = app.test_client()
    login(doctor_browser, doctor.email)

    response = _change_role(client, doctor.id, "nurse")
    assert "Role saved. A changed role signs the person out everywhere." in flashes(_page(response))
    db.session.refresh(doctor)
    assert doctor.role == "nurse"
    assert not signed_in(doctor_browser)
    [row] = db.session.scalars(select(UserSession).where(UserSession.user_id == doctor.id))
    assert row.revoked_reason == "role_changed"
    [event] = audit_events("user.role_changed")
    assert (event.actor_user_id, event.resource_id) == (admin.id, str(doctor.id))
    assert event.changed_fields == '["role"]'
    # The admin is still signed in.
    assert signed_in(client)


def test_a_role_outside_the_staff_list_is_refused(client):
    tenant = make_tenant()
    admin, doctor = make_user(tenant, "admin"), make_user(tenant, "doctor")
    login(client, admin.email)
    assert _change_role(client, doctor.id, "patient").status_code == 400
    db.session.refresh(doctor)
    assert doctor.role == "doctor"


def test_the_last_admin_cannot_be_demoted(client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    login(client, admin.email)
    response = _change_role(client, admin.id, "doctor")
    assert LAST_ADMIN in flashes(_page(response))
    db.session.refresh(admin)
    assert admin.role == "admin"
    assert signed_in(client)
    assert audit_events("user.role_changed") == []


def test_an_admin_can_be_demoted_while_another_remains(client):
    tenant = make_tenant()
    admin, other_admin = make_user(tenant, "admin"), make_user(tenant, "admin")
    make_user(tenant, "admin", active=False)  # a deactivated admin does not count
    login(client, admin.email)
    _change_role(client, other_admin.id, "doctor")
    db.session.refresh(other_admin)
    assert other_admin.role == "doctor"
    response = _change_role(client, admin.id, "doctor")
    assert LAST_ADMIN in flashes(_page(response))


def test_admins_cannot_deactivate_themselves(client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    make_user(tenant, "admin")
    login(client, admin.email)
    response = client.post(f"/users/{admin.id}/deactivate", data={}, follow_redirects=True)
    assert "You cannot deactivate your own account." in flashes(_page(response))
    db.session.refresh(admin)
    assert admin.active
    assert signed_in(client)


def test_deactivate_and_reactivate_a_colleague(app, client):
    tenant = make_tenant()
    admin, coach = make_user(tenant, "admin"), make_user(tenant, "coach")
    login(client, admin.email)
    response = client.post(f"/users/{coach.id}/deactivate", data={}, follow_redirects=True)
    assert "Account deactivated and signed out everywhere." in flashes(_page(response))
    assert login(app.test_client(), coach.email).status_code == 422
    response = client.post(f"/users/{coach.id}/activate", data={}, follow_redirects=True)
    assert "Account reactivated." in flashes(_page(response))
    assert login(app.test_client(), coach.email).status_code == 303
    assert [e.action for e in audit_events("user.deactivated") + audit_events("user.activated")] == [
        "user.deactivated",
        "user.activated",
    ]


def test_people_of_another_clinic_are_not_found(client, outbox):
    tenant, elsewhere = make_tenant(), make_tenant()
    admin = make_user(tenant, "admin")
    foreign = make_user(elsewhere, "doctor")
    invited = make_user(elsewhere, "nurse", password=None)
    login(client, admin.email)
    assert _change_role(client, foreign.id, "nurse").status_code == 404
    assert client.post(f"/users/{foreign.id}/deactivate", data={}).status_code == 404
    assert client.post(f"/users/{foreign.id}/activate", data={}).status_code == 404
    assert client.post(f"/users/{invited.id}/resend-invitation", data={}).status_code == 404
    db.session.refresh(foreign)
    assert foreign.role == "doctor" and foreign.active
    assert outbox.messages() == []


def test_patient_accounts_are_not_managed_from_the_users_page(client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    patient_user = make_portal_user(make_patient(tenant))
    login(client, admin.email)
    assert client.post(f"/users/{patient_user.id}/deactivate", data={}).status_code == 404
    assert _change_role(client, patient_user.id, "admin").status_code == 404
    db.session.refresh(patient_user)
    assert patient_user.role == "patient" and patient_user.active
