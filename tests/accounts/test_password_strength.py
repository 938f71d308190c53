"""Weak passwords are refused wherever a password is chosen (invitation, reset, change), with zxcvbn's
reason next to the field, and nothing changes."""

from __future__ import annotations

import pytest

from healthcrm.accounts.secrets import password_problem
from tests.accounts.pages import field_error
from tests.factories import PASSWORD, login, make_patient, make_portal_user, make_tenant, make_user

COMMON = "This is a very common password. Add another word or two. Uncommon words are better."
WEAK = ["password1234", "qwerty123456"]


@pytest.mark.parametrize("weak", WEAK)
def test_a_common_password_is_refused_on_the_reset_page(client, outbox, weak):
    doctor = make_user(make_tenant(), "doctor")
    client.post("/forgot", data={"email": doctor.email})
    link = outbox.link(doctor.email, "reset")

    response = client.post(link, data={"password": weak, "confirm": weak})

    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "password") == COMMON
    assert client.get(link).status_code == 200  # the link still works
    assert login(client, doctor.email, weak).status_code == 422
    assert login(client, doctor.email, PASSWORD).status_code == 303


@pytest.mark.parametrize("weak", WEAK)
def test_a_common_password_is_refused_when_accepting_an_invitation(app, client, outbox, weak):
    tenant = make_tenant()
    patient = make_patient(tenant)
    user = make_portal_user(patient, password=None)
    staff = app.test_client()
    login(staff, make_user(tenant, "admin").email)
    staff.post(f"/patients/{patient.id}/invite", data={"email": user.email})
    link = outbox.link(user.email, "invitation")

    response = client.post(link, data={"password": weak, "confirm": weak})

    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "password") == COMMON
    assert not user.has_password


@pytest.mark.parametrize("weak", WEAK)
def test_a_common_password_is_refused_on_the_change_password_form(client, weak):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)

    response = client.post(
        "/account/password", data={"current_password": PASSWORD, "password": weak, "confirm": weak}
    )

    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "password") == COMMON
    client.post("/logout", data={})
    assert login(client, doctor.email, PASSWORD).status_code == 303


def test_the_persons_own_name_and_email_make_a_password_guessable():
    email, name = "dana.smith@riverside.example", "Dana Smith"
    assert password_problem("dana.smith1990", email, name) is not None
    assert password_problem("dana.smith1990") is None  # zxcvbn alone does not know her
    assert password_problem("correct horse battery staple", email, name) is None
