"""Outgoing email: SMTP against a real aiosmtpd server, and the outbox folder with its admin pages."""

from __future__ import annotations

import os
import re
import socket
import stat
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from healthcrm.extensions import db
from healthcrm.jobs.models import FINISHED, Job
from healthcrm.mail.services import TENANT_HEADER, compose, deliver, outbox_entries, outbox_message
from tests.conftest import REDIS_URL
from tests.factories import login, make_tenant, make_user

RESET_LINK = re.compile(r"(http://[^\s\"<]+/reset/[A-Za-z0-9_\-]+)")


class Inbox:
    """An aiosmtpd handler that keeps every envelope it is given."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [BytesParser(policy=default_policy).parsebytes(e.content) for e in self.envelopes]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def smtp_app(app, smtp_server):
    controller, inbox = smtp_server
    app.config.update(
        MAIL_BACKEND="smtp",
        SMTP_HOST=controller.hostname,
        SMTP_PORT=controller.port,
        SMTP_STARTTLS=False,
        SMTP_SSL=False,
        SMTP_USERNAME="",
    )
    return inbox


@pytest.fixture
def clinic(app):
    return make_tenant()


def _reset_email(user, url: str = "http://127.0.0.1:5000/reset/abc") -> EmailMessage:
    return compose(
        user.email,
        "password_reset",
        tenant_id=user.tenant_id,
        user=user,
        url=url,
        minutes=30,
    )


def _hand_written(tenant_id: int, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "HealthCRM <no-reply@healthcrm.local>"
    message["To"] = "someone@example.test"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    message[TENANT_HEADER] = str(tenant_id)
    message.set_content(body)
    return message


# --- SMTP -------------------------------------------------------------------------------------------------


def test_deliver_sends_text_and_html_through_smtp(smtp_app, clinic):
    user = make_user(clinic, "doctor", email="dr.who@clinic.test", full_name="Dana Who")

    assert deliver(_reset_email(user, "http://127.0.0.1:5000/reset/tok123")) == "smtp"

    [envelope] = smtp_app.envelopes
    assert envelope.mail_from == "no-reply@healthcrm.local"
    assert envelope.rcpt_tos == ["dr.who@clinic.test"]
    [message] = smtp_app.messages()
    assert message["From"] == "HealthCRM <no-reply@healthcrm.local>"
    assert message["To"] == "dr.who@clinic.test"
    assert message["Subject"] == "Reset your HealthCRM password"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Hello Dana Who" in text and "http://127.0.0.1:5000/reset/tok123" in text
    assert 'href="http://127.0.0.1:5000/reset/tok123"' in html and clinic.name in html
    # The outbox's filing header stays inside the app.
    assert message[TENANT_HEADER] is None


def test_html_part_escapes_what_users_typed(smtp_app, clinic):
    user = make_user(clinic, "doctor", full_name="<b>Mallory</b>")

    deliver(_reset_email(user))

    [message] = smtp_app.messages()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html
    assert "<b>Mallory" not in html
    assert "Hello <b>Mallory</b>," in message.get_body(preferencelist=("plain",)).get_content()


def test_password_reset_request_emails_a_working_link(smtp_app, client, clinic, drain_jobs, outbox_dir):
    user = make_user(clinic, "nurse")

    response = client.post("/forgot", data={"email": user.email})
    assert response.status_code == 303
    drain_jobs()

    job = db.session.query(Job).one()
    assert (job.kind, job.status, job.result) == ("accounts.email_password_reset", FINISHED, {"sent": True})
    if REDIS_URL:
        # The session's `python worker.py` ran the job with its own configuration (the outbox).
        assert len(list(outbox_dir.glob("*.eml"))) == 1
        assert smtp_app.envelopes == []
        pytest.skip(
            "REDIS_URL is set: the reset job ran in the worker process, whose MAIL_BACKEND is outbox "
            "(checked above); SMTP from a job is checked when jobs run inline"
        )
    [message] = smtp_app.messages()
    assert message["To"] == user.email
    assert message["Subject"] == "Reset your HealthCRM password"
    link = RESET_LINK.search(message.get_body(preferencelist=("plain",)).get_content()).group(1)
    assert link in message.get_body(preferencelist=("html",)).get_content()
    page = client.get(link.removeprefix(client.application.config["PUBLIC_URL"]))
    assert page.status_code == 200
    assert "expired" not in page.get_data(as_text=True)


def test_unknown_address_sends_nothing(smtp_app, client, clinic, drain_jobs):
    response = client.post("/forgot", data={"email": "nobody@example.com"})

    assert response.status_code == 303
    drain_jobs()
    assert smtp_app.envelopes == []
    # The request queued the same job as for a known address (same work, same time); the job found nobody.
    job = db.session.query(Job).one()
    assert (job.kind, job.status, job.result) == ("accounts.email_password_reset", FINISHED, {"sent": False})


# --- the outbox -------------------------------------------------------------------------------------------


def test_outbox_backend_writes_a_private_eml_file(app, clinic, outbox_dir):
    user = make_user(clinic, "doctor")

    name = deliver(_reset_email(user))

    path = outbox_dir / name
    assert path.is_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in outbox_dir.iterdir()] == [name]  # no temporary file left behind
    message = BytesParser(policy=default_policy).parsebytes(path.read_bytes())
    assert message["To"] == user.email
    assert message[TENANT_HEADER] == str(clinic.id)
    assert message.get_body(preferencelist=("html",)) is not None
    [entry] = outbox_entries(clinic.id)
    assert (entry.name, entry.to, entry.subject) == (name, user.email, "Reset your HealthCRM password")


def test_outbox_page_lists_only_this_clinics_messages(client, clinic):
    other = make_tenant("Other Clinic")
    admin = make_user(clinic, "admin")
    deliver(_hand_written(clinic.id, "Ours: lab results ready", "hello"))
    deliver(_hand_written(other.id, "Theirs: private matter", "hello"))
    login(client, admin.email)

    page = client.get("/outbox")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Ours: lab results ready" in html
    assert "Theirs" not in html


def test_outbox_message_links_only_to_the_app_and_escapes_the_rest(client, app, clinic):
    admin = make_user(clinic, "admin")
    base = app.config["PUBLIC_URL"]
    body = (
        f"Open {base}/reset/AbC_12-x. Then see {base}/records?page=2&q=1\n"
        f"Not ours: https://evil.example/phish and {base}.evil.example/x\n"
        f'Sneaky: {base}/x"onmouseover="alert(1)\n'
        "<img src=x onerror=alert(1)> & <a href='https://evil.example'>click</a>\n"
    )
    name = deliver(_hand_written(clinic.id, "<script>alert('subject')</script>", body))
    login(client, admin.email)

    page = client.get(f"/outbox/{name}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'<a href="{base}/reset/AbC_12-x">{base}/reset/AbC_12-x</a>.' in html
    assert f'<a href="{base}/records?page=2&amp;q=1">' in html
    assert f'<a href="{base}/x">{base}/x</a>&#34;onmouseover=&#34;alert(1)' in html
    assert '<a href="https://evil.example' not in html
    assert f'<a href="{base}.evil' not in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;a href=" in html
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in html
    listing = client.get("/outbox").get_data(as_text=True)
    assert "<script>alert(" not in listing and "&lt;script&gt;" in listing


def test_reset_email_from_a_job_is_readable_in_the_outbox(client, clinic, drain_jobs):
    admin = make_user(clinic, "admin")
    nurse = make_user(clinic, "nurse")
    client.post("/forgot", data={"email": nurse.email})
    drain_jobs()
    login(client, admin.email)

    [entry] = outbox_entries(clinic.id)
    html = client.get(f"/outbox/{entry.name}").get_data(as_text=True)
    assert entry.to == nurse.email
    public_url = re.escape(client.application.config["PUBLIC_URL"])
    assert re.search(rf'<a href="{public_url}/reset/[A-Za-z0-9_\-]+">', html)


def test_staff_other_than_admins_cannot_read_the_outbox(client, clinic):
    doctor = make_user(clinic, "doctor")
    name = deliver(_hand_written(clinic.id, "Ours", "hello"))
    login(client, doctor.email)

    assert client.get("/outbox").status_code == 403
    assert client.get(f"/outbox/{name}").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/outbox/../../etc/passwd",
        "/outbox/..%2F..%2Fetc%2Fpasswd",
        "/outbox/..",
        "/outbox/passwd.eml",
        "/outbox/20261123T100000-0123456789abcdef0123456789abcdef.eml",
    ],
)
def test_outbox_refuses_names_that_are_not_messages(client, clinic, path):
    login(client, make_user(clinic, "admin").email)

    assert client.get(path).status_code == 404


def test_another_clinics_message_is_not_found(client, clinic):
    other = make_tenant("Other Clinic")
    theirs = deliver(_hand_written(other.id, "Theirs", "secret body"))
    login(client, make_user(clinic, "admin").email)

    response = client.get(f"/outbox/{theirs}")
    assert response.status_code == 404
    assert "secret body" not in response.get_data(as_text=True)
    assert outbox_message(clinic.id, theirs) is None
    assert outbox_message(clinic.id, "../../etc/passwd") is None
    assert outbox_message(clinic.id, theirs + "\n") is None
