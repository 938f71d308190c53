"""Invitations: staff invite patients to the portal from the patient page, admins invite colleagues."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from healthcrm.accounts.models import AccountToken, User
from healthcrm.extensions import db
from tests.accounts.pages import field_error, flashes
from tests.accounts.stored import audit_events, database_contains
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

CHOSEN_PASSWORD = "my very own portal passphrase"
EMAIL_TAKEN = "Someone already has an account with this email."


def _accept(client, link: str, password: str = CHOSEN_PASSWORD):
    return client.post(link, data={"password": password, "confirm": password})


@pytest.mark.parametrize("role", ["admin", "doctor", "nurse", "front_desk"])
def test_staff_invite_a_patient_who_then_sets_a_password_and_sees_the_portal(app, client, outbox, role):
    tenant = make_tenant()
    staff = make_user(tenant, role)
    patient = make_patient(tenant, first_name="Imogen", last_name="Quist")
    login(client, staff.email)
    assert "Invite to the portal" in client.get(f"/patients/{patient.id}").get_data(as_text=True)

    response = client.post(
        f"/patients/{patient.id}/invite", data={"email": "Imogen.Quist@Example.com"}, follow_redirects=True
    )
    assert response.request.path == f"/patients/{patient.id}"
    page = response.get_data(as_text=True)
    assert "Portal invitation sent to imogen.quist@example.com." in flashes(page)
    assert "has not set a password yet" in page

    [message] = outbox.messages("imogen.quist@example.com")
    assert message["Subject"] == "Your HealthCRM account"
    link = outbox.link("imogen.quist@example.com", "invitation")
    token = link.removeprefix("/invitation/")
    assert (
        db.session.scalar(select(AccountToken.token_hash).where(AccountToken.purpose == "invite"))
        == hashlib.sha256(token.encode()).hexdigest()
    )
    assert not database_contains(token)
    [event] = audit_events("patient.portal_invited")
    assert (event.tenant_id, event.actor_user_id, event.patient_id) == (tenant.id, staff.id, patient.id)

    patient_browser = app.test_client()
    welcome = patient_browser.get(link).get_data(as_text=True)
    assert f"Welcome to {tenant.name}" in welcome and "to open your patient portal" in welcome
    response = _accept(patient_browser, link)
    assert response.status_code == 303 and response.headers["Location"] == "/portal"
    portal = patient_browser.get("/portal").get_data(as_text=True)
    assert "Hello, Imogen" in portal
    assert "Welcome! Your password is set." in flashes(portal)
    # The link is spent; the password works from now on.
    assert patient_browser.get(link).status_code == 404
    response = login(app.test_client(), "imogen.quist@example.com", CHOSEN_PASSWORD)
    assert response.headers["Location"] == "/portal"
    assert "Uses the portal" in client.get(f"/patients/{patient.id}").get_data(as_text=True)


def test_a_health_coach_cannot_invite_patients(client, outbox):
    tenant = make_tenant()
    patient = make_patient(tenant)
    login(client, make_user(tenant, "coach").email)
    assert "Invite to the portal" not in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    response = client.post(f"/patients/{patient.id}/invite", data={"email": "someone@example.com"})
    assert response.status_code == 403
    assert db.session.scalars(select(User).where(User.role == "patient")).all() == []
    assert outbox.messages() == []


def test_a_patient_of_another_clinic_is_not_found(client, outbox):
    tenant, elsewhere = make_tenant(), make_tenant()
    foreign = make_patient(elsewhere)
    login(client, make_user(tenant, "doctor").email)
    for email in ("someone@example.com", "not an email"):
        assert client.post(f"/patients/{foreign.id}/invite", data={"email": email}).status_code == 404
    assert foreign.portal_user is None
    assert outbox.messages() == []


def test_a_patient_who_already_uses_the_portal_is_not_invited_again(client, outbox):
    tenant = make_tenant()
    patient = make_patient(tenant)
    make_portal_user(patient)
    login(client, make_user(tenant, "nurse").email)
    response = client.post(f"/patients/{patient.id}/invite", data={"email": "new.address@example.com"})
    assert response.status_code == 422
    assert "This patient already uses the portal." in response.get_data(as_text=True)
    assert patient.portal_user.email == patient.email
    assert outbox.messages() == []


def test_an_email_that_belongs_to_someone_else_is_refused(client, outbox):
    tenant = make_tenant()
    patient = make_patient(tenant)
    nurse = make_user(tenant, "nurse")
    login(client, nurse.email)
    response = client.post(f"/patients/{patient.id}/invite", data={"email": nurse.email})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "email") == EMAIL_TAKEN
    assert patient.portal_user is None
    assert outbox.messages() == []


def test_admins_invite_colleagues_who_land_on_the_patient_list(app, client, outbox):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    response = client.post(
        "/users/invite",
        data={
            "full_name": "Grace Okafor",
            "email": "grace.okafor@example.com",
            "role": "nurse",
        },
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Invitation sent to grace.okafor@example.com." in flashes(page)
    assert "Grace Okafor" in page and "Invited" in page

    [message] = outbox.messages("grace.okafor@example.com")
    assert "as Nurse" in message.get_body(preferencelist=("plain",)).get_content()
    link = outbox.link("grace.okafor@example.com", "invitation")
    nurse_browser = app.test_client()
    assert "Choose a password for <strong>grace.okafor@example.com</strong>." in nurse_browser.get(
        link
    ).get_data(as_text=True)
    response = _accept(nurse_browser, link)
    assert response.status_code == 303 and response.headers["Location"] == "/patients"
    page = nurse_browser.get("/patients").get_data(as_text=True)
    assert "Grace Okafor" in page and "Nurse" in page


def test_only_admins_invite_colleagues(client, outbox):
    tenant = make_tenant()
    login(client, make_user(tenant, "doctor").email)
    response = client.post(
        "/users/invite",
        data={
            "full_name": "Eve Intruder",
            "email": "eve@example.com",
            "role": "admin",
        },
    )
    assert response.status_code == 403
    assert db.session.scalar(select(User).where(User.email == "eve@example.com")) is None
    assert outbox.messages() == []


def test_a_colleague_invitation_needs_a_free_email_and_a_staff_role(client, outbox):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    login(client, admin.email)
    taken = client.post("/users/invite", data={"full_name": "Copy", "email": admin.email, "role": "nurse"})
    assert taken.status_code == 422
    assert field_error(taken.get_data(as_text=True), "email") == EMAIL_TAKEN
    patient_role = client.post(
        "/users/invite",
        data={
            "full_name": "Not Staff",
            "email": "not.staff@example.com",
            "role": "patient",
        },
    )
    assert patient_role.status_code == 422
    assert db.session.scalar(select(User).where(User.email == "not.staff@example.com")) is None
    assert outbox.messages() == []


def test_resending_an_invitation_replaces_the_first_link(app, client, outbox):
    tenant = make_tenant()
    login(client, make_user(tenant, "admin").email)
    invite = {"full_name": "Ada Byron", "email": "ada@example.com", "role": "doctor"}
    client.post("/users/invite", data=invite)
    [first] = outbox.links("ada@example.com", "invitation")
    ada = db.session.scalar(select(User).where(User.email == "ada@example.com"))
    response = client.post(f"/users/{ada.id}/resend-invitation", data={}, follow_redirects=True)
    assert "Invitation sent again." in flashes(response.get_data(as_text=True))
    [second] = set(outbox.links("ada@example.com", "invitation")) - {first}
    assert app.test_client().get(first).status_code == 404
    assert _accept(app.test_client(), second).status_code == 303


def test_an_invitation_works_for_seven_days(app, client, outbox):
    tenant = make_tenant()
    patient = make_patient(tenant)
    login(client, make_user(tenant, "front_desk").email)
    # Start from the real time: with REDIS_URL the token is made by a worker process on the real clock.
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        client.post(f"/patients/{patient.id}/invite", data={"email": "late.reader@example.com"})
        link = outbox.link("late.reader@example.com", "invitation")
        clock.shift(timedelta(days=6, hours=23))
        assert app.test_client().get(link).status_code == 200
        clock.shift(timedelta(hours=2))
        expired = app.test_client().get(link)
        assert expired.status_code == 404
        assert "This invitation no longer works" in expired.get_data(as_text=True)
        assert _accept(app.test_client(), link).status_code == 404
