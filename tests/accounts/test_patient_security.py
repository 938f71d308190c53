"""A patient's own account security: two-step sign-in, the sessions page and the idle timeout."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pyotp
import time_machine
from sqlalchemy import select

from healthcrm.accounts.models import UserSession
from healthcrm.extensions import db
from tests.accounts.pages import flashes, signed_in
from tests.factories import login, make_patient, make_portal_user, make_tenant

KEY = re.compile(r"\b([A-Z2-7]{32})\b")
START = datetime(2026, 8, 9, 22, 30, tzinfo=UTC)  # a Sunday night, past midnight in some zones


def _patient_browser(app, user_agent: str = "Patient phone"):
    user = make_portal_user(make_patient(make_tenant()))
    browser = app.test_client()
    browser.environ_base["HTTP_USER_AGENT"] = user_agent
    login(browser, user.email)
    return user, browser


def test_the_security_page_is_in_the_portal_and_linked_from_its_menu(app):
    _user, browser = _patient_browser(app)
    home = browser.get("/portal").get_data(as_text=True)
    assert 'href="/account/security"' in home
    page = browser.get("/account/security").get_data(as_text=True)
    assert "Account and security" in page
    assert 'href="/portal"' in page  # the portal's layout and menu, not the staff bar
    assert 'href="/patients"' not in page


def test_a_patient_sets_up_two_step_sign_in_and_then_must_give_a_code(app):
    user, browser = _patient_browser(app)
    page = browser.get("/account/mfa/setup").get_data(as_text=True)
    secret = KEY.search(page).group(1)
    response = browser.post("/account/mfa/setup", data={"code": pyotp.TOTP(secret).at(time.time() - 30)})
    assert response.status_code == 200
    db.session.expire_all()
    assert user.mfa_enabled

    fresh = app.test_client()
    response = login(fresh, user.email)
    assert response.status_code == 303 and response.headers["Location"] == "/login/mfa"
    assert fresh.get("/portal").status_code == 302  # not signed in with the password alone
    assert (
        fresh.post(
            "/login/mfa", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"}
        ).status_code
        == 422
    )
    response = fresh.post("/login/mfa", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303 and response.headers["Location"] == "/portal"
    assert fresh.get("/portal").status_code == 200


def test_a_patient_sees_their_sessions_and_revokes_one(app):
    user, phone = _patient_browser(app, "Patient phone")
    laptop = app.test_client()
    laptop.environ_base["HTTP_USER_AGENT"] = "Patient laptop"
    login(laptop, user.email)
    page = phone.get("/account/security").get_data(as_text=True)
    assert "Patient phone" in page and "Patient laptop" in page
    [laptop_row] = db.session.scalars(select(UserSession).where(UserSession.user_agent == "Patient laptop"))
    response = phone.post(f"/account/sessions/{laptop_row.id}/revoke", data={}, follow_redirects=True)
    assert "That session is signed out." in flashes(response.get_data(as_text=True))
    assert not signed_in(laptop) and signed_in(phone)


def test_a_patient_is_signed_out_after_30_idle_minutes(app):
    user = make_portal_user(make_patient(make_tenant()))
    browser = app.test_client()
    with time_machine.travel(START, tick=False) as clock:
        login(browser, user.email)
        clock.shift(timedelta(minutes=29))
        assert browser.get("/account/security").status_code == 200
        clock.shift(timedelta(minutes=30, seconds=1))
        response = browser.get("/account/security")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
