"""Forgot password: one answer for every email, an emailed single-use link stored as a hash, 30 minutes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from healthcrm.accounts.models import AccountToken
from healthcrm.extensions import db
from healthcrm.jobs.models import FINISHED, Job
from tests.accounts.pages import field_error, flashes, signed_in
from tests.accounts.stored import audit_events, database_contains
from tests.factories import PASSWORD, login, make_tenant, make_user

NEW_PASSWORD = "new and much better passphrase"
LINK_GONE = "This link no longer works"


def _ask_for_reset(client, email: str):
    return client.post("/forgot", data={"email": email}, follow_redirects=True)


def _set_password(client, link: str, password: str = NEW_PASSWORD, confirm: str | None = None):
    return client.post(link, data={"password": password, "confirm": password if confirm is None else confirm})


def test_the_answer_is_the_same_for_known_and_unknown_emails(client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    known = _ask_for_reset(client, doctor.email)
    unknown = _ask_for_reset(client, "nobody@nowhere.example")
    assert known.status_code == unknown.status_code == 200
    assert known.request.path == unknown.request.path == "/login"
    message = "If that email has an account, a reset link is on its way. It works for 30 minutes."
    assert flashes(known.get_data(as_text=True)) == flashes(unknown.get_data(as_text=True)) == [message]
    assert [m["To"] for m in outbox.messages()] == [doctor.email]


def test_the_email_carries_a_reset_link_whose_token_is_stored_only_as_a_hash(client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    _ask_for_reset(client, doctor.email)
    [message] = outbox.messages(doctor.email)
    assert message["Subject"] == "Reset your HealthCRM password"
    link = outbox.link(doctor.email, "reset")
    token = link.removeprefix("/reset/")
    [stored] = db.session.scalars(select(AccountToken).where(AccountToken.user_id == doctor.id))
    assert stored.purpose == "reset"
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not database_contains(token)
    page = client.get(link)
    assert page.status_code == 200
    assert f"For {doctor.email}." in page.get_data(as_text=True)


def test_the_link_sets_a_new_password_and_signs_out_every_device(app, client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    other_device = app.test_client()
    login(other_device, doctor.email)
    _ask_for_reset(client, doctor.email)
    link = outbox.link(doctor.email, "reset")

    response = _set_password(client, link)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert "Your password is set. Sign in with it now." in flashes(page)
    assert not signed_in(other_device)
    assert login(app.test_client(), doctor.email, PASSWORD).status_code == 422
    assert login(client, doctor.email, NEW_PASSWORD).status_code == 303


def test_the_link_works_once(client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    _ask_for_reset(client, doctor.email)
    link = outbox.link(doctor.email, "reset")
    assert _set_password(client, link).status_code == 303
    again = client.get(link)
    assert again.status_code == 404
    assert LINK_GONE in again.get_data(as_text=True)
    assert _set_password(client, link, "yet another fine passphrase").status_code == 404
    assert login(client, doctor.email, NEW_PASSWORD).status_code == 303


def test_the_link_expires_after_30_minutes(client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    # Start from the real time: with REDIS_URL the token is made by a worker process on the real clock.
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        _ask_for_reset(client, doctor.email)
        link = outbox.link(doctor.email, "reset")
        clock.shift(timedelta(minutes=29))
        assert client.get(link).status_code == 200
        clock.shift(timedelta(minutes=2))
        expired = client.get(link)
        assert expired.status_code == 404
        assert LINK_GONE in expired.get_data(as_text=True)
        assert _set_password(client, link).status_code == 404
    assert login(client, doctor.email, PASSWORD).status_code == 303


def test_a_weak_password_is_refused_next_to_the_field_and_changes_nothing(client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    _ask_for_reset(client, doctor.email)
    link = outbox.link(doctor.email, "reset")
    for weak, message in (
        ("short", "Use at least 12 characters."),
        ("aaaaaaaaaaaaaaaa", "This password is too easy to guess; mix more different characters."),
        (doctor.email, "Your password cannot be your email address."),
    ):
        response = _set_password(client, link, weak)
        assert response.status_code == 422
        assert field_error(response.get_data(as_text=True), "password") == message
    mismatch = _set_password(client, link, NEW_PASSWORD, confirm="something else entirely")
    assert mismatch.status_code == 422
    assert field_error(mismatch.get_data(as_text=True), "confirm") == "The two passwords are not the same."
    # The link still works and the old password still signs in.
    assert client.get(link).status_code == 200
    assert login(client, doctor.email, PASSWORD).status_code == 303


def test_asking_again_invalidates_the_first_link(client, outbox):
    doctor = make_user(make_tenant(), "doctor")
    _ask_for_reset(client, doctor.email)
    [first] = outbox.links(doctor.email, "reset")
    _ask_for_reset(client, doctor.email)
    [second] = set(outbox.links(doctor.email, "reset")) - {first}
    assert client.get(first).status_code == 404
    assert _set_password(client, first).status_code == 404
    assert _set_password(client, second).status_code == 303


def test_no_link_is_sent_to_deactivated_accounts(client, outbox):
    doctor = make_user(make_tenant(), "doctor", active=False)
    response = _ask_for_reset(client, doctor.email)
    assert response.request.path == "/login"
    assert outbox.messages() == []


def test_known_and_unknown_emails_queue_the_same_job_and_only_the_known_one_gets_mail(client, outbox):
    doctor = make_user(make_tenant(), "doctor")

    known = client.post("/forgot", data={"email": doctor.email})
    unknown = client.post("/forgot", data={"email": "nobody@nowhere.example"})

    assert known.status_code == unknown.status_code == 303
    assert known.headers["Location"] == unknown.headers["Location"]
    assert [m["To"] for m in outbox.messages()] == [doctor.email]
    jobs = db.session.scalars(select(Job).order_by(Job.created_at)).all()
    assert [(job.kind, job.tenant_id, job.status) for job in jobs] == [
        ("accounts.email_password_reset", None, FINISHED),
        ("accounts.email_password_reset", None, FINISHED),
    ]
    assert [job.result for job in jobs] == [{"sent": True}, {"sent": False}]
    # The job audits the request: on the clinic's chain when the address is known, the system's if not.
    requested = audit_events("auth.password_reset_requested")
    assert [(event.tenant_id, event.outcome) for event in requested] == [
        (doctor.tenant_id, "success"),
        (None, "failure"),
    ]
    assert requested[0].request_id == known.headers["X-Request-ID"]
