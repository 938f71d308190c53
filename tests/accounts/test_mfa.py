"""Two-step sign-in (TOTP): enrolment by QR code, the code at sign-in, recovery codes, clinic requirement."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pyotp
import time_machine
from sqlalchemy import select

from healthcrm.accounts import mfa
from healthcrm.accounts.models import RecoveryCode, User
from healthcrm.accounts.services import PENDING_MFA_MINUTES
from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from tests.accounts.pages import field_error, session_cookie, signed_in
from tests.accounts.stored import audit_events, database_contains
from tests.concurrency import parallel
from tests.factories import PASSWORD, login, make_patient, make_portal_user, make_tenant, make_user

KEY = re.compile(r"<p>Key: <code>([A-Z2-7]+)</code></p>")
CODES = re.compile(r"<li>([0-9a-f]{6}-[0-9a-f]{6})</li>")


def _wrong_code(secret: str) -> str:
    # Not the current code nor its neighbours, which the app accepts for clock drift.
    totp, now = pyotp.TOTP(secret), time.time()
    near = {totp.at(now + step) for step in (-60, -30, 0, 30, 60)}
    return next(code for code in (f"{digit}" * 6 for digit in range(10)) if code not in near)


def _enrol(client) -> tuple[str, list[str]]:
    """Turn on two-step sign-in for the signed-in user; return the key and the recovery codes shown."""
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    secret = KEY.search(page).group(1)
    # The previous step's code (accepted for clock drift), so that the current code is still unused for
    # the sign-in that follows: each code works once.
    response = client.post("/account/mfa/setup", data={"code": _previous_code(secret)})
    assert response.status_code == 200
    return secret, CODES.findall(response.get_data(as_text=True))


def _previous_code(secret: str) -> str:
    return pyotp.TOTP(secret).at(time.time() - 30)


def _user_with_mfa(app, role: str = "doctor") -> tuple[User, str, list[str]]:
    user = make_user(make_tenant(), role)
    browser = app.test_client()
    login(browser, user.email)
    secret, codes = _enrol(browser)
    browser.post("/logout", data={})
    return user, secret, codes


def test_the_enrolment_page_shows_a_qr_code_and_the_key(client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    assert re.search(r'<img class="qr" src="data:image/svg\+xml[^"]+"', page)
    assert len(KEY.search(page).group(1)) >= 16
    assert not doctor.mfa_enabled


def test_a_wrong_code_does_not_turn_mfa_on(client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)
    secret = KEY.search(client.get("/account/mfa/setup").get_data(as_text=True)).group(1)
    response = client.post("/account/mfa/setup", data={"code": _wrong_code(secret)})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "code").startswith("That code does not match.")
    # The same key stays on the page so the person can try again.
    assert KEY.search(page).group(1) == secret
    assert not doctor.mfa_enabled
    assert db.session.scalars(select(RecoveryCode)).all() == []


def test_the_right_code_turns_mfa_on_and_shows_ten_recovery_codes_once(client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)
    _, codes = _enrol(client)
    assert len(codes) == len(set(codes)) == 10
    assert doctor.mfa_enabled
    [event] = audit_events("auth.mfa_enabled")
    assert event.actor_user_id == doctor.id
    # Shown once: the security page only counts them, and the setup page is closed.
    security = client.get("/account/security").get_data(as_text=True)
    assert "10 recovery codes left" in security
    assert not any(code in security for code in codes)
    assert client.get("/account/mfa/setup").status_code == 302
    assert signed_in(client)


def test_the_secret_and_recovery_codes_are_not_stored_in_the_clear(app):
    doctor, secret, codes = _user_with_mfa(app)
    assert doctor.totp_secret_encrypted and secret not in doctor.totp_secret_encrypted
    assert not database_contains(secret)
    assert not any(database_contains(code) for code in codes)


def test_sign_in_then_asks_for_the_code(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    response = login(client, doctor.email)
    assert response.status_code == 303 and response.headers["Location"] == "/login/mfa"
    assert session_cookie(client) is None
    assert client.get("/patients").status_code == 302
    assert "Two-step sign-in" in client.get("/login/mfa").get_data(as_text=True)

    wrong = client.post("/login/mfa", data={"code": _wrong_code(secret)})
    assert wrong.status_code == 422
    assert field_error(wrong.get_data(as_text=True), "code").startswith("That code is not right.")
    assert session_cookie(client) is None

    response = client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303 and response.headers["Location"] == "/patients"
    assert session_cookie(client)
    assert client.get("/patients").status_code == 200
    [failed] = audit_events("auth.mfa_failed")
    assert failed.actor_user_id == doctor.id and failed.outcome == "failure"
    assert audit_events("auth.login")[-1].changed_fields == '["mfa"]'


def test_the_code_step_keeps_next(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    client.post("/login?next=/account/security", data={"email": doctor.email, "password": PASSWORD})
    response = client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
    assert response.headers["Location"] == "/account/security"


def test_the_code_step_is_not_reachable_without_the_password(client):
    assert client.get("/login/mfa").headers["Location"] == "/login"
    response = client.post("/login/mfa", data={"code": "123456"})
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_the_code_step_expires_after_the_password_step(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    # Travel forward, never back: codes of steps before the last one used are refused.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1), tick=False) as clock:
        login(client, doctor.email)
        clock.shift(timedelta(minutes=PENDING_MFA_MINUTES, seconds=1))
        assert client.get("/login/mfa").headers["Location"] == "/login"
        response = client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
        assert response.status_code == 302 and response.headers["Location"] == "/login"
        assert session_cookie(client) is None
        # Starting again works.
        login(client, doctor.email)
        clock.shift(timedelta(minutes=PENDING_MFA_MINUTES - 1))
        assert client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()}).status_code == 303


def test_a_password_reset_ends_a_half_finished_sign_in(app, client, outbox):
    doctor, secret, _ = _user_with_mfa(app)
    login(client, doctor.email)  # someone who learnt the password stops at the code step
    owner = app.test_client()
    owner.post("/forgot", data={"email": doctor.email})
    new_password = "the owner picks a new passphrase"
    owner.post(outbox.link(doctor.email, "reset"), data={"password": new_password, "confirm": new_password})
    response = client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert session_cookie(client) is None


def test_a_recovery_code_works_once(app, client):
    doctor, _, codes = _user_with_mfa(app)
    login(client, doctor.email)
    response = client.post("/login/mfa", data={"code": codes[3].upper()})
    assert response.status_code == 303 and response.headers["Location"] == "/patients"
    assert "9 recovery codes left" in client.get("/account/security").get_data(as_text=True)
    client.post("/logout", data={})

    login(client, doctor.email)
    again = client.post("/login/mfa", data={"code": codes[3]})
    assert again.status_code == 422
    assert session_cookie(client) is None
    assert client.post("/login/mfa", data={"code": codes[4]}).status_code == 303


def test_guessing_codes_is_throttled(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    login(client, doctor.email)
    for _ in range(5):
        assert client.post("/login/mfa", data={"code": _wrong_code(secret)}).status_code == 422
    assert client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()}).status_code == 429
    assert session_cookie(client) is None


def _require_mfa(app, tenant) -> None:
    admin = make_user(tenant, "admin")
    browser = app.test_client()
    login(browser, admin.email)
    response = browser.post("/clinic/security", data={"mfa_required_for_staff": "y"})
    assert response.status_code == 303
    db.session.refresh(tenant)
    assert tenant.mfa_required_for_staff


def test_a_clinic_requirement_sends_staff_without_mfa_to_enrolment_on_every_page(app, client):
    tenant = make_tenant()
    doctor = make_user(tenant, "doctor")
    login(client, doctor.email)
    _require_mfa(app, tenant)
    [event] = audit_events("clinic.mfa_requirement_changed")
    assert event.tenant_id == tenant.id

    for url in ("/patients", "/account/security", "/users", "/jobs", "/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"] in ("/account/mfa/setup", "/patients"), url
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    assert "Your clinic requires two-step sign-in for staff." in page

    # Enrolment lets them through.
    secret = KEY.search(page).group(1)
    assert client.post("/account/mfa/setup", data={"code": pyotp.TOTP(secret).now()}).status_code == 200
    assert client.get("/patients").status_code == 200


def test_staff_waiting_to_enrol_can_still_sign_out(app, client):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    login(client, nurse.email)
    _require_mfa(app, tenant)
    assert client.get("/patients").headers["Location"] == "/account/mfa/setup"
    response = client.post("/logout", data={})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert session_cookie(client) is None
    assert audit_events("auth.logout")[-1].actor_user_id == nurse.id


def test_staff_signing_in_under_the_requirement_go_to_enrolment(app, client):
    tenant = make_tenant(mfa_required_for_staff=True)
    doctor = make_user(tenant, "doctor")
    response = login(client, doctor.email, follow=True)
    assert response.request.path == "/account/mfa/setup"
    assert "Your clinic requires two-step sign-in for staff." in response.get_data(as_text=True)


def test_patients_are_not_forced_to_enrol(app, client):
    tenant = make_tenant(mfa_required_for_staff=True)
    patient_user = make_portal_user(make_patient(tenant, first_name="Otto"))
    login(client, patient_user.email)
    portal = client.get("/portal")
    assert portal.status_code == 200 and "Hello, Otto" in portal.get_data(as_text=True)
    assert client.get("/account/security").status_code == 200


def test_mfa_cannot_be_turned_off_while_the_clinic_requires_it(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    doctor.tenant.mfa_required_for_staff = True
    db.session.commit()
    login(client, doctor.email)
    client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
    response = client.post("/account/mfa/disable", data={"password": PASSWORD})
    assert response.status_code == 422
    assert "Your clinic requires two-step sign-in for staff." in response.get_data(as_text=True)
    db.session.refresh(doctor)
    assert doctor.mfa_enabled


def test_mfa_can_be_turned_off_with_the_password(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    login(client, doctor.email)
    client.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
    wrong = client.post("/account/mfa/disable", data={"password": "not my password"})
    assert wrong.status_code == 422
    assert field_error(wrong.get_data(as_text=True), "mfa-off-password") == "Your password is not correct."
    response = client.post("/account/mfa/disable", data={"password": PASSWORD})
    assert response.status_code == 303
    db.session.refresh(doctor)
    assert not doctor.mfa_enabled and doctor.totp_secret_encrypted is None
    client.post("/logout", data={})
    assert login(client, doctor.email).headers["Location"] == "/patients"


def test_a_code_works_only_once(app, client):
    doctor, secret, _ = _user_with_mfa(app)
    code = pyotp.TOTP(secret).now()
    login(client, doctor.email)
    assert client.post("/login/mfa", data={"code": code}).status_code == 303
    client.post("/logout", data={})
    login(client, doctor.email)
    replay = client.post("/login/mfa", data={"code": code})
    assert replay.status_code == 422
    assert session_cookie(client) is None


def test_the_same_code_verified_twice_at_once_passes_once(app, time_machine):
    doctor, secret, _ = _user_with_mfa(app)
    doctor_id, start = doctor.id, time.time()
    for round_ in range(1, 4):
        # A fresh, unused 30-second step each round.
        time_machine.move_to(datetime.fromtimestamp(start + 60 * round_, UTC), tick=False)
        code = pyotp.TOTP(secret).now()
        actor = Actor(tenant_id=doctor.tenant_id, user_id=doctor_id, role="doctor", request_id=f"r{round_}")

        # Both threads hold the user as it was before either checks the code.
        outcomes = parallel(
            2,
            app,
            work=lambda user, code=code, actor=actor: mfa.check_second_factor(user, code, actor),
            load=lambda _index: db.session.get(User, doctor_id),
        )

        assert sorted(outcomes, key=str) == [False, True], outcomes
    assert len(audit_events("auth.mfa_verified")) == 3
    assert len(audit_events("auth.mfa_failed")) == 3
