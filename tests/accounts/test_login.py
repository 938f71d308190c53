"""Signing in and out: the session cookie, one answer for all failures, `next`, throttling, audit events."""

from __future__ import annotations

import re

from sqlalchemy import select

from healthcrm.accounts.models import UserSession
from healthcrm.accounts.services import LOGIN_REFUSED
from healthcrm.extensions import db
from tests.accounts.pages import form_error, session_cookie, signed_in
from tests.accounts.stored import audit_events
from tests.factories import PASSWORD, login, make_patient, make_portal_user, make_tenant, make_user

WRONG_PASSWORD = "not the password at all"


def _attempt(
    client,
    email: str,
    password: str = WRONG_PASSWORD,
    *,
    ip: str = "203.0.113.7",
    headers: dict | None = None,
):
    return client.post(
        "/login",
        data={"email": email, "password": password},
        headers=headers or {},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_signing_in_sets_an_http_only_lax_session_cookie(client):
    doctor = make_user(make_tenant(), "doctor")
    response = login(client, doctor.email)
    assert response.status_code == 303
    assert response.headers["Location"] == "/patients"
    [cookie_header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("hc_session=")]
    assert "HttpOnly" in cookie_header
    assert "SameSite=Lax" in cookie_header
    assert "Path=/" in cookie_header
    assert session_cookie(client)
    assert client.get("/patients").status_code == 200


def test_a_patient_lands_on_the_portal(client):
    patient = make_patient(make_tenant(), first_name="Rosalind")
    user = make_portal_user(patient)
    response = login(client, user.email)
    assert response.headers["Location"] == "/portal"
    assert "Hello, Rosalind" in client.get("/portal").get_data(as_text=True)


def test_signing_out_revokes_the_session_so_the_old_cookie_no_longer_works(client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)
    old_cookie = session_cookie(client)

    response = client.post("/logout", data={})
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert session_cookie(client) is None
    assert "You are signed out." in client.get("/login").get_data(as_text=True)

    # Someone who copied the cookie before sign-out replays it.
    client.set_cookie("hc_session", old_cookie)
    response = client.get("/patients")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    [row] = db.session.scalars(select(UserSession).where(UserSession.user_id == doctor.id))
    assert row.revoked_at is not None and row.revoked_reason == "logout"


def test_unknown_email_wrong_password_and_deactivated_account_get_the_same_answer(client):
    tenant = make_tenant()
    known = make_user(tenant, "nurse")
    gone = make_user(tenant, "nurse", active=False)
    answers = []
    for email, password in (
        ("nobody@nowhere.example", PASSWORD),
        (known.email, "wrong password here"),
        (gone.email, PASSWORD),
    ):
        response = login(client, email, password)
        page = response.get_data(as_text=True)
        # The page echoes the typed email and carries per-request tokens; everything else must match.
        page = page.replace(email, "EMAIL")
        page = re.sub(r'(nonce|content|value)="[^"]*"', r'\1=""', page)
        answers.append((response.status_code, form_error(page), page))
        assert session_cookie(client) is None
    assert answers[0][:2] == (422, LOGIN_REFUSED)
    assert answers[0] == answers[1] == answers[2]


def test_next_is_followed_for_local_paths_only(client):
    doctor = make_user(make_tenant(), "doctor")
    response = client.get("/account/security")
    assert response.headers["Location"] == "/login?next=/account/security"
    response = client.post(
        "/login?next=/account/security", data={"email": doctor.email, "password": PASSWORD}
    )
    assert response.headers["Location"] == "/account/security"

    for target in ("//evil.com", "https://evil.com/", "/\\evil.com", "javascript:alert(1)"):
        client.post("/logout", data={})
        response = client.post(
            "/login", query_string={"next": target}, data={"email": doctor.email, "password": PASSWORD}
        )
        assert response.status_code == 303
        assert response.headers["Location"] == "/patients", target


def test_sixth_failed_attempt_on_one_account_is_throttled_from_any_address(client):
    nurse = make_user(make_tenant(), "nurse")
    for n in range(5):
        assert _attempt(client, nurse.email, ip=f"198.51.100.{n + 1}").status_code == 422
    response = _attempt(client, nurse.email, ip="198.51.100.99")
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    # The address in another case is the same account.
    assert _attempt(client, nurse.email.upper(), ip="198.51.100.100").status_code == 429
    # Even the right password waits, or guessing could go on.
    assert _attempt(client, nurse.email, PASSWORD, ip="198.51.100.101").status_code == 429
    assert session_cookie(client) is None
    # Other accounts are not affected.
    other = make_user(make_tenant(), "nurse")
    assert _attempt(client, other.email, PASSWORD, ip="198.51.100.102").status_code == 303


def test_one_client_trying_many_emails_is_throttled(client):
    for n in range(30):
        assert _attempt(client, f"guess{n}@nowhere.example").status_code == 422
    assert _attempt(client, "guess30@nowhere.example").status_code == 429
    # Another client is not affected.
    assert _attempt(client, "guess31@nowhere.example", ip="192.0.2.50").status_code == 422


def test_a_forged_forwarded_for_header_does_not_escape_the_client_limit(client):
    for n in range(30):
        response = _attempt(client, f"guess{n}@nowhere.example", headers={"X-Forwarded-For": f"10.9.8.{n}"})
        assert response.status_code == 422
    response = _attempt(client, "guess30@nowhere.example", headers={"X-Forwarded-For": "10.9.9.9"})
    assert response.status_code == 429
    [event] = audit_events("auth.login_failed")[-1:]
    assert event.ip == "203.0.113.7"


def test_successful_sign_ins_do_not_count_against_the_limits(app):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    colleagues = [make_user(tenant, "doctor") for _ in range(3)]
    for _ in range(4):
        assert _attempt(app.test_client(), nurse.email).status_code == 422
    for _ in range(3):
        assert _attempt(app.test_client(), nurse.email, PASSWORD).status_code == 303
    for n in range(25):
        assert _attempt(app.test_client(), f"someone{n}@nowhere.example").status_code == 422
    for colleague in colleagues:
        assert _attempt(app.test_client(), colleague.email, PASSWORD).status_code == 303
    # 4 + 25 failures so far from this address, 4 of them on the nurse's account.
    assert _attempt(app.test_client(), nurse.email).status_code == 422
    assert _attempt(app.test_client(), nurse.email).status_code == 429


def test_sign_in_failures_and_sign_out_are_audited(client):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")

    login(client, "stranger@nowhere.example")
    [unknown] = audit_events("auth.login_failed")
    assert unknown.tenant_id is None and unknown.actor_user_id is None
    assert unknown.outcome == "failure" and unknown.ip == "127.0.0.1"

    login(client, doctor.email, "wrong password here")
    [_, wrong] = audit_events("auth.login_failed")
    assert (wrong.tenant_id, wrong.actor_user_id, wrong.outcome) == (tenant.id, doctor.id, "failure")

    login(client, doctor.email)
    [signed] = audit_events("auth.login")
    [row] = db.session.scalars(select(UserSession).where(UserSession.user_id == doctor.id))
    assert (signed.tenant_id, signed.actor_user_id, signed.outcome) == (tenant.id, doctor.id, "success")
    assert signed.resource_type == "session" and signed.resource_id == str(row.id)

    client.post("/logout", data={})
    [out] = audit_events("auth.logout")
    assert (out.tenant_id, out.actor_user_id, out.resource_id) == (tenant.id, doctor.id, str(row.id))
    # The password is never written anywhere in the log.
    assert all(PASSWORD not in str(e.changed_fields) for e in audit_events("auth.login"))
    assert not signed_in(client)


def test_next_with_control_characters_stays_on_the_site(client):
    doctor = make_user(make_tenant(), "doctor")
    for target in ("/\t/evil.com", "/\n/evil.com"):
        response = client.post(
            "/login", query_string={"next": target}, data={"email": doctor.email, "password": PASSWORD}
        )
        assert response.status_code == 303, repr(target)
        assert response.headers["Location"] == "/patients", repr(target)
        client.post("/logout", data={})
