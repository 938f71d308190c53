"""Server-side sessions: the devices page, revocation, idle and absolute timeouts, what the table stores."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from healthcrm.accounts.models import UserSession
from healthcrm.extensions import db
from tests.accounts.pages import duplicate_ids, flashes, session_cookie, signed_in
from tests.accounts.stored import database_contains
from tests.factories import PASSWORD, login, make_patient, make_portal_user, make_tenant, make_user

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NEW_PASSWORD = "a brand new passphrase 42"


def _browser(app, user_agent: str):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def _session_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'action="/account/sessions/(\d+)/revoke"', page)]


def test_security_page_lists_each_signed_in_device(app):
    doctor = make_user(make_tenant(), "doctor")
    laptop = _browser(app, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0")
    phone = _browser(
        app,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    )
    login(laptop, doctor.email)
    login(phone, doctor.email)
    login(_browser(app, "Old browser"), doctor.email)
    page = laptop.get("/account/security").get_data(as_text=True)
    assert "Firefox on Windows" in page and "Safari on iPhone" in page and "Old browser" in page
    assert len(_session_ids(page)) == 3
    assert page.count("this device") == 1
    assert re.search(r"Firefox on Windows</span> <span class=\"badge ok\">this device</span>", page)


def test_each_field_on_the_security_page_has_its_own_label(client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)
    doctor.mfa_enabled_at = datetime(2026, 1, 1)  # so the page also shows the form that turns it off
    db.session.commit()
    page = client.get("/account/security").get_data(as_text=True)
    assert 'name="password"' in page and "Turn two-step sign-in off" in page
    assert duplicate_ids(page) == set()


def test_revoking_one_session_signs_out_that_device_only(app):
    doctor = make_user(make_tenant(), "doctor")
    laptop, phone = _browser(app, "Laptop browser"), _browser(app, "Phone browser")
    login(laptop, doctor.email)
    login(phone, doctor.email)
    [phone_row] = db.session.scalars(select(UserSession).where(UserSession.user_agent == "Phone browser"))

    response = laptop.post(f"/account/sessions/{phone_row.id}/revoke", data={}, follow_redirects=True)
    assert "That session is signed out." in flashes(response.get_data(as_text=True))
    assert not signed_in(phone)
    assert signed_in(laptop)
    page = laptop.get("/account/security").get_data(as_text=True)
    assert "Phone browser" not in page


def test_a_session_of_someone_else_cannot_be_revoked(app):
    tenant = make_tenant()
    doctor, nurse = make_user(tenant, "doctor"), make_user(tenant, "nurse")
    doctor_browser, nurse_browser = app.test_client(), app.test_client()
    login(doctor_browser, doctor.email)
    login(nurse_browser, nurse.email)
    [nurse_row] = db.session.scalars(select(UserSession).where(UserSession.user_id == nurse.id))
    assert doctor_browser.post(f"/account/sessions/{nurse_row.id}/revoke", data={}).status_code == 404
    assert signed_in(nurse_browser)


def test_sign_out_everywhere_ends_every_session_including_this_one(app):
    doctor = make_user(make_tenant(), "doctor")
    browsers = [_browser(app, f"Browser {n}") for n in range(3)]
    for browser in browsers:
        login(browser, doctor.email)
    response = browsers[0].post("/account/sessions/revoke-all", data={})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert session_cookie(browsers[0]) is None
    assert not any(signed_in(browser) for browser in browsers)
    rows = db.session.scalars(select(UserSession).where(UserSession.user_id == doctor.id)).all()
    assert {row.revoked_reason for row in rows} == {"signed_out_everywhere"}


def test_staff_sessions_end_after_15_idle_minutes(app):
    doctor = make_user(make_tenant(), "doctor")
    browser = app.test_client()
    with time_machine.travel(START, tick=False) as clock:
        login(browser, doctor.email)
        clock.shift(timedelta(minutes=14))
        assert browser.get("/patients").status_code == 200
        clock.shift(timedelta(minutes=14))  # 28 minutes after sign-in, 14 after the last page
        assert browser.get("/patients").status_code == 200
        clock.shift(timedelta(minutes=15, seconds=1))
        response = browser.get("/patients")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/patients"


def test_patient_sessions_allow_30_idle_minutes(app):
    tenant = make_tenant()
    patient_user = make_portal_user(make_patient(tenant))
    doctor = make_user(tenant, "doctor")
    patient_browser, doctor_browser = app.test_client(), app.test_client()
    with time_machine.travel(START, tick=False) as clock:
        login(patient_browser, patient_user.email)
        login(doctor_browser, doctor.email)
        clock.shift(timedelta(minutes=20))
        assert patient_browser.get("/portal").status_code == 200
        assert doctor_browser.get("/patients").status_code == 302
        clock.shift(timedelta(minutes=29))
        assert patient_browser.get("/portal").status_code == 200
        clock.shift(timedelta(minutes=30, seconds=1))
        assert patient_browser.get("/portal").status_code == 302


def test_busy_sessions_still_end_12_hours_after_sign_in(app):
    patient_user = make_portal_user(make_patient(make_tenant()))
    browser = app.test_client()
    with time_machine.travel(START, tick=False) as clock:
        login(browser, patient_user.email)
        for _ in range(28):  # a page every 25 minutes, up to 11 h 40 min
            clock.shift(timedelta(minutes=25))
            assert browser.get("/portal").status_code == 200
        clock.shift(timedelta(minutes=25))  # 12 h 05 min after sign-in
        assert browser.get("/portal").status_code == 302
        assert browser.get("/account/security").status_code == 302


def test_deactivating_a_user_ends_their_sessions_at_once(app):
    tenant = make_tenant()
    admin, nurse = make_user(tenant, "admin"), make_user(tenant, "nurse")
    admin_browser, nurse_browser = app.test_client(), app.test_client()
    login(admin_browser, admin.email)
    login(nurse_browser, nurse.email)
    assert nurse_browser.get("/patients").status_code == 200

    admin_browser.post(f"/users/{nurse.id}/deactivate", data={})
    assert nurse_browser.get("/patients").status_code == 302
    assert not signed_in(nurse_browser)
    rows = db.session.scalars(select(UserSession).where(UserSession.user_id == nurse.id)).all()
    assert [row.revoked_reason for row in rows] == ["deactivated"]
    # Reactivating does not bring the old session back.
    admin_browser.post(f"/users/{nurse.id}/activate", data={})
    assert not signed_in(nurse_browser)


def test_changing_the_password_keeps_this_session_and_ends_the_others(app):
    doctor = make_user(make_tenant(), "doctor")
    here, elsewhere = _browser(app, "Here"), _browser(app, "Elsewhere")
    login(here, doctor.email)
    login(elsewhere, doctor.email)
    response = here.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Password changed. Your other sessions were signed out." in flashes(page)
    assert signed_in(here)
    assert not signed_in(elsewhere)
    assert login(app.test_client(), doctor.email, PASSWORD).status_code == 422
    assert login(app.test_client(), doctor.email, NEW_PASSWORD).status_code == 303


def test_a_wrong_current_password_changes_nothing(app):
    doctor = make_user(make_tenant(), "doctor")
    here, elsewhere = app.test_client(), app.test_client()
    login(here, doctor.email)
    login(elsewhere, doctor.email)
    response = here.post(
        "/account/password",
        data={
            "current_password": "not my password",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert response.status_code == 422
    assert "Your current password is not correct." in response.get_data(as_text=True)
    assert signed_in(elsewhere)
    assert login(app.test_client(), doctor.email, PASSWORD).status_code == 303


def test_the_session_table_holds_only_a_hash_of_the_cookie(client):
    doctor = make_user(make_tenant(), "doctor")
    login(client, doctor.email)
    raw = session_cookie(client)
    [row] = db.session.scalars(select(UserSession).where(UserSession.user_id == doctor.id))
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert not database_contains(raw)
