"""Self-registration: staff issue a code on paper; the patient types it with their date of birth and email,
confirms the email, chooses a password and lands in the portal. One code makes at most one account."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from healthcrm.accounts import registration
from healthcrm.accounts.models import User
from healthcrm.accounts.registration import REFUSED, RegistrationCode
from healthcrm.audit.services import Actor
from healthcrm.demo.data import seed_demo
from healthcrm.extensions import db
from healthcrm.portal.models import PortalEvent
from tests.accounts.pages import flashes
from tests.accounts.stored import audit_events, database_contains
from tests.concurrency import parallel
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

PASSWORD = "my very own portal passphrase"
BORN = date(1980, 5, 17)
START = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


def _issue(client, patient_id: int) -> str:
    page = client.post(f"/patients/{patient_id}/registration-code", data={}).get_data(as_text=True)
    match = re.search(r'data-testid="registration-code">([0-9A-Z-]+)<', page)
    assert match, page
    return match.group(1)


def _register(client, code: str, born: date = BORN, email: str = "ann.new@example.com"):
    return client.post("/register", data={"code": code, "date_of_birth": born.isoformat(), "email": email})


def _setup(app, client):
    tenant = make_tenant()
    staff = make_user(tenant, "front_desk")
    patient = make_patient(tenant, first_name="Ann", last_name="Newcomer", date_of_birth=BORN)
    login(client, staff.email)
    return tenant, staff, patient


def _count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_patient_registers_with_a_code_and_lands_in_the_portal(app, client, outbox):
    tenant, staff, patient = _setup(app, client)
    assert "Registration code" in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    code = _issue(client, patient.id)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}", code)
    assert not database_contains(code) and not database_contains(code.replace("-", ""))
    [issued] = audit_events("patient.registration_code_issued")
    assert (issued.actor_user_id, issued.patient_id) == (staff.id, patient.id)
    profile = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Open code" in profile and code not in profile

    browser = app.test_client()
    assert "Create your account" in browser.get("/login").get_data(as_text=True)
    # Typed in lower case, with spaces instead of dashes: the same code.
    response = _register(browser, code.lower().replace("-", " "), email="Ann.New@Example.com")
    assert response.status_code == 200 and "Check your email" in response.get_data(as_text=True)
    link = outbox.link("ann.new@example.com", "register")
    assert not database_contains(link.removeprefix("/register/"))
    assert "Choose a password for <strong>ann.new@example.com</strong>" in browser.get(link).get_data(
        as_text=True
    )

    weak = browser.post(link, data={"password": "short", "confirm": "short"})
    assert weak.status_code == 422 and _count(User) == 1  # only the staff member
    response = browser.post(link, data={"password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/portal"
    portal = browser.get("/portal").get_data(as_text=True)
    assert "Hello, Ann" in portal and "Welcome! Your account is ready." in flashes(portal)

    user = db.session.scalar(select(User).where(User.role == "patient"))
    assert (user.email, user.patient_id, user.tenant_id) == ("ann.new@example.com", patient.id, tenant.id)
    [event] = db.session.scalars(select(PortalEvent).where(PortalEvent.kind == "account.registered")).all()
    assert (event.patient_id, event.tenant_id) == (patient.id, tenant.id)
    [registered] = audit_events("patient.registered")
    assert (registered.patient_id, registered.actor_user_id) == (patient.id, user.id)
    assert db.session.scalar(select(RegistrationCode.used_at)) is not None
    # Spent: the link and the code no longer work; the password does.
    assert browser.get(link).status_code == 404
    assert _register(app.test_client(), code).status_code == 422
    assert login(app.test_client(), "ann.new@example.com", PASSWORD).headers["Location"] == "/portal"
    # The patient now has an account: no new code, and the card is gone.
    page = client.post(f"/patients/{patient.id}/registration-code", data={}, follow_redirects=True).get_data(
        as_text=True
    )
    assert "already has a portal account" in page
    assert _count(RegistrationCode) == 1


@pytest.mark.parametrize("case", ["wrong_code", "wrong_birth", "expired", "used", "revoked"])
def test_every_wrong_answer_is_the_same_422_and_is_audited(app, client, outbox, case):
    _tenant, _staff, patient = _setup(app, client)
    with time_machine.travel(START, tick=False) as clock:
        code = _issue(client, patient.id)
        born = BORN
        if case == "wrong_code":
            code = "ZZZZ-ZZZZ-ZZ" if code != "ZZZZ-ZZZZ-ZZ" else "YYYY-YYYY-YY"
        elif case == "wrong_birth":
            born = date(1980, 5, 18)
        elif case == "expired":
            clock.shift(timedelta(days=14, seconds=1))
        elif case == "used":
            db.session.execute(db.update(RegistrationCode).values(used_at=START.replace(tzinfo=None)))
            db.session.commit()
        elif case == "revoked":
            client.post(f"/patients/{patient.id}/registration-code/revoke", data={})
            assert audit_events("patient.registration_code_revoked")
        response = _register(app.test_client(), code, born)
    assert response.status_code == 422
    assert REFUSED in response.get_data(as_text=True)
    assert audit_events("patient.registration_failed")
    assert outbox.messages("ann.new@example.com") == []


def test_a_new_code_revokes_the_old_one(app, client, outbox):
    _tenant, _staff, patient = _setup(app, client)
    first = _issue(client, patient.id)
    second = _issue(client, patient.id)
    assert _register(app.test_client(), first).status_code == 422
    assert _register(app.test_client(), second).status_code == 200
    assert len(audit_events("patient.registration_code_revoked")) == 1


def test_an_email_already_used_in_a_clinic_gets_a_clear_message(app, client, outbox):
    tenant, _staff, patient = _setup(app, client)
    other = make_portal_user(make_patient(tenant, email="taken@example.com"))
    code = _issue(client, patient.id)
    response = _register(app.test_client(), code, email=other.email)
    assert response.status_code == 422
    assert "Someone already has an account with this email" in response.get_data(as_text=True)
    assert outbox.messages(other.email) == []


def test_a_coach_cannot_issue_codes_and_another_clinic_gets_404(app, client):
    tenant = make_tenant()
    patient = make_patient(tenant)
    login(client, make_user(tenant, "coach").email)
    assert client.post(f"/patients/{patient.id}/registration-code", data={}).status_code == 403
    other = app.test_client()
    login(other, make_user(make_tenant(), "admin").email)
    assert other.post(f"/patients/{patient.id}/registration-code", data={}).status_code == 404
    assert other.post(f"/patients/{patient.id}/registration-code/revoke", data={}).status_code == 404
    assert _count(RegistrationCode) == 0


def test_registration_attempts_are_rate_limited_per_code(app, client):
    _tenant, _staff, patient = _setup(app, client)
    code = _issue(client, patient.id)
    answers = [_register(app.test_client(), code, date(1990, 1, i + 1)).status_code for i in range(6)]
    assert answers == [422] * 5 + [429]
    # Even the right date of birth is refused now: nobody can keep guessing a code's birth date.
    limited = _register(app.test_client(), code)
    assert limited.status_code == 429


def test_eight_browsers_finishing_with_one_code_make_one_account(app, client, outbox):
    _tenant, _staff, patient = _setup(app, client)
    code = _issue(client, patient.id)
    assert _register(app.test_client(), code).status_code == 200
    token = outbox.link("ann.new@example.com", "register").removeprefix("/register/")
    patient_id = patient.id

    def finish(_index):
        try:
            return registration.complete_registration(token, PASSWORD, Actor(tenant_id=None)).id
        except registration.AccountError as error:
            return error.message

    outcomes = parallel(8, app, finish)
    created = [o for o in outcomes if isinstance(o, int)]
    assert len(created) == 1, outcomes
    assert all(o == registration.ALREADY_USED or "expired" in str(o) for o in outcomes if o not in created)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.patient_id == patient_id)) == 1
    assert (
        db.session.scalar(
            select(func.count()).select_from(PortalEvent).where(PortalEvent.kind == "account.registered")
        )
        == 1
    )
    assert len(audit_events("patient.registered")) == 1


def test_the_demo_prints_an_open_code_per_clinic_that_registers_its_patient(app, outbox):
    result = seed_demo("demo-password-1")
    assert [c.code for c in result.registration_codes] == ["RVSD-2026-AB", "WTRS-2026-CD"]
    again = seed_demo(None)
    assert again.registration_codes == result.registration_codes  # deterministic, nothing new
    assert _count(RegistrationCode) == 2
    demo = result.registration_codes[0]
    browser = app.test_client()
    answer = _register(browser, demo.code, date.fromisoformat(demo.date_of_birth), "tryer@example.com")
    assert answer.status_code == 200
    link = outbox.link("tryer@example.com", "register")
    assert browser.post(link, data={"password": PASSWORD, "confirm": PASSWORD}).status_code == 303
    # Used: the next run does not print it again.
    assert [c.code for c in seed_demo(None).registration_codes] == ["WTRS-2026-CD"]
