"""Notifications: the in-app list (sharing's notices too), mark read, the badge htmx polls, the email
choices, and one email per notification however often the event or the email job runs."""

from __future__ import annotations

from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
import time_machine
from sqlalchemy import func, select

from healthcrm.accounts.models import Tenant
from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.portal import events, notifications
from healthcrm.portal.models import Notification, PortalEvent
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

KIND = "test.replied"


@events.handles(KIND)
def _tell_the_patient(event: PortalEvent) -> None:
    patient_user = event.payload["notify_user_id"]
    notifications.notify(event, patient_user, "message", "Your care team answered your message", "/portal")


@pytest.fixture
def patient_user(app):
    tenant = make_tenant(name="Riverside Family Clinic")
    return make_portal_user(make_patient(tenant))


def raise_reply(user, *, commit: bool = False) -> PortalEvent:
    staff = make_user(db.session.get(Tenant, user.tenant_id), "coach")
    actor = Actor(tenant_id=user.tenant_id, user_id=staff.id, role="coach")
    event = events.raise_event(actor, KIND, patient_id=user.patient_id, notify_user_id=user.id)
    if commit:
        events.commit()
    else:
        db.session.commit()
        events.discard_pending()
    return event


def emails(outbox_dir) -> list:
    return [
        BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        for path in sorted(outbox_dir.glob("*.eml"))
    ]


def count(model) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model))


def test_an_event_handled_twice_makes_one_notification_and_one_email(
    app, inline_jobs, patient_user, outbox_dir
):
    event = raise_reply(patient_user)
    assert events.handle_event(event.id, patient_user.tenant_id) is True
    assert events.handle_event(event.id, patient_user.tenant_id) is False
    assert count(Notification) == 1
    sent = emails(outbox_dir)
    assert len(sent) == 1
    message = sent[0]
    assert message["To"] == patient_user.email
    assert message["Subject"] == "You have a new message"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "You have a new message at Riverside Family Clinic" in text and "sign in to read it" in text
    assert "/portal/notifications" in text
    # Nothing of the notification itself (no health information, not even the in-app text).
    assert "answered" not in text and patient_user.full_name not in message.as_string()
    with all_tenants("test"):
        assert db.session.scalar(select(Notification.emailed_at)) is not None


def test_the_email_job_run_twice_or_by_two_workers_sends_once(app, patient_user, outbox_dir, monkeypatch):
    monkeypatch.setattr(notifications, "queue_email", lambda *_args: None)  # the test runs the job itself
    event = raise_reply(patient_user)
    events.handle_event(event.id, patient_user.tenant_id)
    with all_tenants("test"):
        notification_id = db.session.scalar(select(Notification.id))
    tenant_id = patient_user.tenant_id
    outcomes = parallel(4, app, lambda _i: notifications.email_notification(notification_id, tenant_id))
    assert sorted(outcomes, key=str) == [False, False, False, True], outcomes
    assert notifications.email_notification(notification_id, tenant_id) is False
    assert len(emails(outbox_dir)) == 1


def test_a_failed_send_leaves_the_email_for_the_retry(app, patient_user, outbox_dir, monkeypatch):
    monkeypatch.setattr(notifications, "queue_email", lambda *_args: None)
    event = raise_reply(patient_user)
    events.handle_event(event.id, patient_user.tenant_id)
    with all_tenants("test"):
        notification_id = db.session.scalar(select(Notification.id))

    def down(_message):
        raise OSError("SMTP down")

    monkeypatch.setattr("healthcrm.mail.services.deliver", down)
    with pytest.raises(OSError):
        notifications.email_notification(notification_id, patient_user.tenant_id)
    monkeypatch.undo()
    monkeypatch.setattr(notifications, "queue_email", lambda *_args: None)
    assert notifications.email_notification(notification_id, patient_user.tenant_id) is True
    assert len(emails(outbox_dir)) == 1


def test_email_choices_are_respected(app, inline_jobs, patient_user, outbox_dir, client):
    login(client, patient_user.email)
    page = client.get("/portal/notifications/settings")
    assert page.status_code == 200 and "A new message from the care team" in page.get_data(as_text=True)
    saved = client.post("/portal/notifications/settings", data={"kinds": ["result", "refill"]})
    assert saved.status_code == 303
    db.session.expire_all()
    assert patient_user.notify_email_kinds == ["result", "refill"]
    event = raise_reply(patient_user, commit=True)  # the handling job runs inline
    db.session.expire_all()
    with all_tenants("test"):
        assert db.session.get(PortalEvent, event.id).handled_at is not None
    assert count(Notification) == 1
    assert emails(outbox_dir) == []
    bad = client.post("/portal/notifications/settings", data={"kinds": ["message", "gossip"]})
    assert bad.status_code == 422
    db.session.expire_all()
    assert patient_user.notify_email_kinds == ["result", "refill"]


def test_staff_notifications_are_not_emailed(app, inline_jobs, outbox_dir):
    tenant = make_tenant()
    patient = make_patient(tenant)
    nurse = make_user(tenant, "nurse")
    actor = Actor(tenant_id=tenant.id, user_id=nurse.id, role="nurse")
    events.raise_event(actor, KIND, patient_id=patient.id, notify_user_id=nurse.id)
    events.commit()
    assert count(Notification) == 1
    assert emails(outbox_dir) == []


def _share_notice(user, text="Dr Lee opened the records you shared") -> Notification:
    notice = Notification(tenant_id=user.tenant_id, user_id=user.id, text=text)
    db.session.add(notice)
    db.session.commit()
    return notice


def test_the_list_shows_every_kind_with_sharings_notices_and_marks_read(
    app, patient_user, client, monkeypatch
):
    monkeypatch.setattr(notifications, "queue_email", lambda *_args: None)
    share = _share_notice(patient_user)
    event = raise_reply(patient_user)
    events.handle_event(event.id, patient_user.tenant_id)
    login(client, patient_user.email)
    page = client.get("/portal/notifications")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Dr Lee opened the records you shared" in html and "Your care team answered your message" in html
    assert html.count("Mark as read</button>") == 2

    fragment = client.post(
        f"/portal/notifications/{share.id}/mark-read", data={}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.get_data(as_text=True)
    assert fragment.get_data(as_text=True).count("Mark as read</button>") == 1
    assert notifications.unread_count(patient_user) == 1
    plain = client.post("/portal/notifications/mark-all-read", data={})
    assert plain.status_code == 303
    assert notifications.unread_count(patient_user) == 0


def test_another_persons_notification_is_not_found_and_stays_unread(app, patient_user, client):
    other = make_portal_user(make_patient(db.session.get(Tenant, patient_user.tenant_id)))
    theirs = _share_notice(other)
    login(client, patient_user.email)
    assert client.post(f"/portal/notifications/{theirs.id}/mark-read", data={}).status_code == 404
    client.post("/portal/notifications/mark-all-read", data={})
    assert notifications.unread_count(other) == 1


def test_the_badge_endpoint_answers_the_same_element_with_the_count(app, patient_user, client):
    login(client, patient_user.email)
    home = client.get("/portal").get_data(as_text=True)
    assert 'id="notification-badge"' in home and 'href="/portal/notifications"' in home
    assert 'data-hx-get="/portal/notifications/badge"' in home and 'data-hx-trigger="every 20s"' in home
    assert "unread" not in home.split('id="notification-badge"')[1].split("</a>")[0]
    _share_notice(patient_user)
    _share_notice(patient_user, "Another notice")
    badge = client.get("/portal/notifications/badge", headers={"HX-Request": "true"})
    body = badge.get_data(as_text=True)
    assert badge.status_code == 200
    assert body.strip().startswith('<a class="bell" href="/portal/notifications" id="notification-badge"')
    assert 'aria-label="2 unread"' in body and "<html" not in body
    # Without JavaScript the page itself carries the count at each load.
    assert 'aria-label="2 unread"' in client.get("/portal/notifications").get_data(as_text=True)


def test_staff_may_not_open_the_patients_notifications(app, client):
    nurse = make_user(make_tenant(), "nurse")
    login(client, nurse.email)
    assert client.get("/portal/notifications").status_code == 403
    assert client.get("/portal/notifications/badge").status_code == 403


def test_the_sweep_emails_what_no_job_sent(app, patient_user, outbox_dir, monkeypatch):
    monkeypatch.setattr(notifications, "queue_email", lambda *_args: None)  # the queue was down
    event = raise_reply(patient_user)
    events.handle_event(event.id, patient_user.tenant_id)
    _share_notice(patient_user)  # sharing's notices are not emailed
    assert notifications.sweep_unsent_emails().startswith("0 of 0")
    with time_machine.travel(utcnow() + notifications.EMAIL_SWEEP_AFTER + timedelta(seconds=5), tick=False):
        assert notifications.sweep_unsent_emails() == "1 of 1 unsent notification emails sent"
        assert notifications.sweep_unsent_emails().startswith("0 of 0")
    assert len(emails(outbox_dir)) == 1


def test_the_home_card_names_each_kinds_link_and_marks_read_in_place(client, patient_user):
    for kind, text, link in (
        ("care_plan", "Your care team has shared a care plan for you to read.", "/portal/care-plan"),
        ("share", "Dr. Ruiz opened the records you shared.", None),
    ):
        db.session.add(
            Notification(
                tenant_id=patient_user.tenant_id, user_id=patient_user.id, kind=kind, text=text, link=link
            )
        )
    db.session.commit()
    login(client, patient_user.email)
    home = client.get("/portal").get_data(as_text=True)
    assert '<a href="/portal/care-plan">Read your care plan</a>' in home
    assert "See your shared records</a>" in home and home.count("See your shared records") == 1
    care_plan = db.session.scalar(select(Notification).where(Notification.kind == "care_plan"))
    answer = client.post(
        f"/portal/notifications/{care_plan.id}/mark-read",
        data={"back": "home"},
        headers={"HX-Request": "true"},
    )
    fragment = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" not in fragment
    assert "care plan" not in fragment and "Dr. Ruiz" in fragment
