"""Messages between a patient and the care team: sending, replying, read state per reader, routing, the
inbox, and nothing of another patient's reachable."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy import event as sa_event

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.care.models import Task
from healthcrm.extensions import db
from healthcrm.portal import events
from healthcrm.portal.feed import ATTENTION_SOURCES, TIMELINE_SOURCES
from healthcrm.portal.messages import services
from healthcrm.portal.messages.models import (
    CLOSED,
    NEW,
    WAITING,
    Message,
    MessageImmutable,
    MessageTopic,
    Thread,
    ThreadRead,
)
from healthcrm.portal.models import Notification, PortalEvent
from healthcrm.tenant_scope import all_tenants
from tests.factories import login as sign_in
from tests.factories import make_patient, make_portal_user, make_tenant, make_user

HX = {"HX-Request": "true"}


def login(client, email: str):
    """Sign in as `email`, signing out whoever was signed in on this client first."""
    client.post("/logout", data={})
    return sign_in(client, email)


@pytest.fixture
def clinic(app, inline_jobs):
    tenant = make_tenant()
    coach = make_user(tenant, "coach")
    nurse = make_user(tenant, "nurse")
    doctor = make_user(tenant, "doctor")
    desk = make_user(tenant, "front_desk")
    admin = make_user(tenant, "admin")
    patient = make_patient(tenant, assigned_coach_id=coach.id)
    me = make_portal_user(patient)
    other_patient = make_patient(tenant, assigned_coach_id=coach.id)
    other = make_portal_user(other_patient)
    billing = MessageTopic(
        tenant_id=tenant.id, name="Billing", pool_roles=["front_desk", "admin"], active=True
    )
    db.session.add(billing)
    db.session.commit()
    return {
        "tenant": tenant,
        "coach": coach,
        "nurse": nurse,
        "doctor": doctor,
        "desk": desk,
        "admin": admin,
        "patient": patient,
        "me": me,
        "other_patient": other_patient,
        "other": other,
        "billing": billing,
    }


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _actions() -> list[str]:
    with all_tenants("test"):
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def _send(client, subject="Knee pain", body="My knee hurts after the walk.", to="coach"):
    return client.post("/portal/messages/new", data={"to": to, "subject": subject, "body": body})


def _only_thread() -> Thread:
    with all_tenants("test"):
        return db.session.scalars(select(Thread)).one()


def test_a_new_message_goes_to_the_coach_with_a_task_and_is_audited(client, clinic):
    login(client, clinic["me"].email)
    page = client.get("/portal/messages/new")
    assert page.status_code == 200
    assert "Not for emergencies" in page.get_data(as_text=True)
    assert "within 2 working days" in page.get_data(as_text=True)
    response = _send(client)
    assert response.status_code == 303
    thread = _only_thread()
    assert thread.assignee_id == clinic["coach"].id
    assert thread.status == NEW and thread.message_count == 1
    assert response.headers["Location"].endswith(f"/portal/messages/{thread.id}")
    with all_tenants("test"):
        task = db.session.scalars(select(Task)).one()
    assert task.kind == "message" and task.assignee_id == clinic["coach"].id
    assert task.link == f"/care/inbox/{thread.id}"
    assert {"message.thread_create", "message.send"} <= set(_actions())
    shown = client.get(f"/portal/messages/{thread.id}").get_data(as_text=True)
    assert "My knee hurts after the walk." in shown
    assert "message.thread_view" in _actions()


def test_a_topic_routes_to_its_pool(client, clinic):
    login(client, clinic["me"].email)
    assert _send(client, subject="Invoice", to=f"topic:{clinic['billing'].id}").status_code == 303
    thread = _only_thread()
    assert thread.assignee_id is None
    assert thread.pool_roles == ["front_desk", "admin"] and thread.pool_name == "Billing"
    with all_tenants("test"):
        task = db.session.scalars(select(Task)).one()
    assert task.assignee_id is None and task.pool_roles == ["front_desk", "admin"]
    # The front desk finds it under "my pools", the coach does not.
    login(client, clinic["desk"].email)
    assert "Invoice" in client.get("/care/inbox?scope=pools").get_data(as_text=True)
    login(client, clinic["coach"].email)
    assert "Invoice" not in client.get("/care/inbox?scope=pools").get_data(as_text=True)
    assert "Invoice" not in client.get("/care/inbox?scope=mine").get_data(as_text=True)
    assert "Invoice" in client.get("/care/inbox?scope=all").get_data(as_text=True)


def test_an_inactive_or_unknown_topic_is_refused(client, clinic):
    login(client, clinic["me"].email)
    assert _send(client, to="topic:999999").status_code == 422
    assert _send(client, to="topic:x").status_code == 422
    assert _count(Thread) == 0


def test_a_reply_notifies_the_patient_without_health_information_and_waits_on_them(client, clinic):
    login(client, clinic["me"].email)
    _send(client, subject="Knee pain")
    thread = _only_thread()
    login(client, clinic["coach"].email)
    inbox = client.get("/care/inbox").get_data(as_text=True)
    assert "Knee pain" in inbox and "Unread" in inbox
    assert client.get(f"/care/inbox/{thread.id}").status_code == 200
    response = client.post(f"/care/inbox/{thread.id}/reply", data={"body": "Rest it for two days."})
    assert response.status_code == 303
    db.session.refresh(thread)
    assert thread.status == WAITING and thread.message_count == 2
    with all_tenants("test"):
        notice = db.session.scalars(select(Notification)).one()
    assert notice.user_id == clinic["me"].id and notice.kind == "message"
    assert notice.link == f"/portal/messages/{thread.id}"
    assert "Knee" not in notice.text and "Rest" not in notice.text
    assert "message.reply" in _actions()
    # The patient sees it unread, then read once opened.
    login(client, clinic["me"].email)
    assert "Unread" in client.get("/portal/messages").get_data(as_text=True)
    assert client.get(f"/portal/messages/{thread.id}").status_code == 200
    assert "Unread" not in client.get("/portal/messages").get_data(as_text=True)
    # The patient writes again: the care team's turn.
    client.post(f"/portal/messages/{thread.id}", data={"body": "Thanks, better now."})
    db.session.refresh(thread)
    assert thread.status == NEW and thread.message_count == 3


def test_read_state_is_per_reader(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    login(client, clinic["coach"].email)
    client.get(f"/care/inbox/{thread.id}")
    assert "Unread" not in client.get("/care/inbox").get_data(as_text=True)
    login(client, clinic["nurse"].email)
    assert "Unread" in client.get("/care/inbox").get_data(as_text=True)
    with all_tenants("test"):
        readers = set(db.session.scalars(select(ThreadRead.user_id)))
    assert readers == {clinic["me"].id, clinic["coach"].id}


def test_htmx_reply_appends_the_message_in_place(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    response = client.post(f"/portal/messages/{thread.id}", data={"body": "One more thing."}, headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'id="conversation"' in body and "One more thing." in body
    assert "<html" not in body
    invalid = client.post(f"/portal/messages/{thread.id}", data={"body": "  "}, headers=HX)
    assert invalid.status_code == 422 and "Write your message." in invalid.get_data(as_text=True)
    db.session.refresh(thread)
    assert thread.message_count == 2


def test_sent_messages_never_change(client, clinic, app):
    editing = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "message" in rule.rule and ({"PUT", "PATCH", "DELETE"} & rule.methods or "edit" in rule.rule)
    ]
    assert editing == []
    login(client, clinic["me"].email)
    _send(client)
    with all_tenants("test"):
        message = db.session.scalars(select(Message)).one()
        message.body = "changed"
        with pytest.raises(MessageImmutable):
            db.session.flush()
        db.session.rollback()
        message = db.session.scalars(select(Message)).one()
        db.session.delete(message)
        with pytest.raises(MessageImmutable):
            db.session.flush()
        db.session.rollback()
        assert db.session.scalars(select(Message.body)).one() == "My knee hurts after the walk."


def test_sending_is_refused_while_messaging_is_off(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    login(client, clinic["coach"].email)
    response = client.post(
        f"/care/inbox/patients/{clinic['patient'].id}/messaging",
        data={"enabled": "off", "thread_id": thread.id},
    )
    assert response.status_code == 303
    assert "patient.messaging_changed" in _actions()
    login(client, clinic["me"].email)
    refused = _send(client, subject="Again")
    assert refused.status_code == 422
    assert "Messages are turned off" in refused.get_data(as_text=True)
    reply = client.post(f"/portal/messages/{thread.id}", data={"body": "Hello?"})
    assert reply.status_code == 422
    assert _count(Thread) == 1 and _count(Message) == 1
    login(client, clinic["coach"].email)
    client.post(f"/care/inbox/patients/{clinic['patient'].id}/messaging", data={"enabled": "on"})
    login(client, clinic["me"].email)
    assert _send(client, subject="Again").status_code == 303


def test_another_patients_thread_answers_404_and_changes_nothing(client, clinic):
    login(client, clinic["other"].email)
    _send(client, subject="Theirs")
    theirs = _only_thread()
    messages_before = _count(Message)
    login(client, clinic["me"].email)
    assert client.get(f"/portal/messages/{theirs.id}").status_code == 404
    assert client.get(f"/portal/messages/{theirs.id}", headers=HX).status_code == 404
    assert client.post(f"/portal/messages/{theirs.id}", data={"body": "hi"}).status_code == 404
    assert client.post(f"/portal/messages/{theirs.id}", data={"body": "hi"}, headers=HX).status_code == 404
    assert client.get(f"/portal/messages/{theirs.id}/files/1").status_code == 404
    # A patient id in the form is ignored: the session's patient is the one who writes.
    _send(client, subject="Mine")
    with all_tenants("test"):
        mine = db.session.scalar(select(Thread).where(Thread.subject == "Mine"))
    assert mine.patient_id == clinic["patient"].id
    assert _count(Message) == messages_before + 1
    assert "Theirs" not in client.get("/portal/messages").get_data(as_text=True)
    with all_tenants("test"):
        assert (
            db.session.scalar(
                select(ThreadRead).where(
                    ThreadRead.thread_id == theirs.id, ThreadRead.user_id == clinic["me"].id
                )
            )
            is None
        )


def test_another_clinics_thread_is_not_found_in_the_inbox(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    elsewhere = make_tenant(name="Elsewhere")
    stranger = make_user(elsewhere, "coach")
    login(client, stranger.email)
    assert client.get(f"/care/inbox/{thread.id}").status_code == 404
    assert client.post(f"/care/inbox/{thread.id}/reply", data={"body": "x"}).status_code == 404
    assert client.post(f"/care/inbox/{thread.id}/close", data={}).status_code == 404
    assert (
        client.post(
            f"/care/inbox/patients/{clinic['patient'].id}/messaging", data={"enabled": "off"}
        ).status_code
        == 404
    )
    assert _count(Message) == 1
    db.session.refresh(thread)
    assert thread.status == NEW


def test_an_event_handled_twice_makes_one_task(app, clinic):
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["me"].id, role="patient")
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # the queue is down: the event waits for us
    try:
        services.start_thread(actor, clinic["patient"].id, subject="Twice", body="Hello")
    finally:
        app.config["REDIS_URL"] = ""
    with all_tenants("test"):
        event = db.session.scalars(select(PortalEvent).where(PortalEvent.kind == "message.sent")).one()
    assert events.handle_event(event.id, event.tenant_id) is True
    assert events.handle_event(event.id, event.tenant_id) is False
    assert _count(Task) == 1


def test_a_second_patient_message_does_not_open_a_second_task(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    client.post(f"/portal/messages/{thread.id}", data={"body": "And another thing."})
    assert _count(Task) == 1


def test_reassign_and_close(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    login(client, clinic["coach"].email)
    assert (
        client.post(
            f"/care/inbox/{thread.id}/reassign", data={"to": f"user:{clinic['nurse'].id}"}
        ).status_code
        == 303
    )
    db.session.refresh(thread)
    assert thread.assignee_id == clinic["nurse"].id
    client.post(f"/care/inbox/{thread.id}/reassign", data={"to": f"topic:{clinic['billing'].id}"})
    db.session.refresh(thread)
    assert thread.assignee_id is None and thread.pool_name == "Billing"
    assert client.post(f"/care/inbox/{thread.id}/reassign", data={"to": "user:999999"}).status_code == 422
    assert client.post(f"/care/inbox/{thread.id}/close", data={}).status_code == 303
    db.session.refresh(thread)
    assert thread.status == CLOSED
    assert {"message.thread_reassign", "message.thread_close"} <= set(_actions())
    assert "Knee pain" in client.get("/care/inbox?status=closed").get_data(as_text=True)


def test_topics_and_the_notice_are_for_admins(client, clinic):
    login(client, clinic["coach"].email)
    assert client.get("/care/inbox/topics").status_code == 403
    login(client, clinic["admin"].email)
    assert client.get("/care/inbox/topics").status_code == 200
    assert client.post("/care/inbox/topics", data={"name": "Medication question"}).status_code == 422
    created = client.post(
        "/care/inbox/topics", data={"name": "Medication question", "roles": ["nurse", "doctor"]}
    )
    assert created.status_code == 303
    assert client.post("/care/inbox/topics", data={"name": "billing", "roles": ["admin"]}).status_code == 422
    assert (
        client.post(
            "/care/inbox/notice",
            data={"emergency_notice": "Call 911 in an emergency.", "reply_time": "within a day"},
        ).status_code
        == 303
    )
    login(client, clinic["me"].email)
    page = client.get("/portal/messages/new").get_data(as_text=True)
    assert "Medication question" in page and "within a day" in page and "Call 911 in an emergency." in page


def test_inbox_pages_by_keyset_with_queries_that_do_not_grow(client, clinic, app):
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["me"].id, role="patient")

    made = []

    def add(n):
        for _ in range(n):
            services.start_thread(actor, clinic["patient"].id, subject=f"Question {len(made)}", body="Hello")
            made.append(1)

    login(client, clinic["coach"].email)

    def queries(url):
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        sa_event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get(url).status_code == 200
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    add(3)
    few = queries("/care/inbox")
    add(25)
    many = queries("/care/inbox")
    assert many == few
    first = client.get("/care/inbox").get_data(as_text=True)
    assert "Question 27" in first and "Older threads" in first
    page = services.inbox(Actor(tenant_id=clinic["tenant"].id, user_id=clinic["coach"].id, role="coach"))
    assert len(page.rows) == services.PAGE_SIZE and page.counts[NEW] == (28, 28)
    more = client.get(f"/care/inbox?before={page.next_cursor}", headers=HX).get_data(as_text=True)
    assert "Question 0" in more and "Question 27" not in more and "<html" not in more
    assert client.get("/care/inbox?before=nonsense").status_code == 400


def test_timeline_and_attention_sources(client, clinic):
    login(client, clinic["me"].email)
    _send(client)
    thread = _only_thread()
    login(client, clinic["coach"].email)
    client.post(f"/care/inbox/{thread.id}/reply", data={"body": "Rest it."})
    client.post(f"/care/inbox/{thread.id}/reply", data={"body": "And ice."})
    _label, source = TIMELINE_SOURCES["message"]
    tenant_id, patient_id = clinic["tenant"].id, clinic["patient"].id
    items = source(tenant_id, patient_id, None, 2)
    assert [item.title for item in items] == ["A message from your care team"] * 2
    older = source(tenant_id, patient_id, (items[-1].at, items[-1].key), 10)
    assert [item.title for item in older] == ["You wrote to your care team"]
    attention = [a for fn in ATTENTION_SOURCES for a in fn(tenant_id, patient_id, clinic["me"].id)]
    assert [a.text for a in attention] == ["2 unread messages"]
    assert source(tenant_id, clinic["other_patient"].id, None, 10) == []


def test_a_staff_reply_completes_the_answer_task_and_the_next_patient_message_opens_one(
    client, clinic, drain_jobs
):
    sign_in(client, clinic["me"].email)
    assert _send(client).status_code == 303
    thread = _only_thread()
    drain_jobs()
    coach = Actor(tenant_id=clinic["coach"].tenant_id, user_id=clinic["coach"].id, role="coach")
    services.staff_reply(coach, thread.id, "Rest it for two days, then walk again.")
    drain_jobs()
    with all_tenants("test"):
        tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
    assert [(t.status, t.completion_note) for t in tasks] == [("done", "Answered in the inbox.")]
    assert tasks[0].completed_by_id == clinic["coach"].id
    # The patient writes again: a new task to answer.
    me = Actor(tenant_id=clinic["me"].tenant_id, user_id=clinic["me"].id, role="patient")
    services.patient_reply(me, clinic["me"].patient_id, thread.id, "Still sore.")
    drain_jobs()
    with all_tenants("test"):
        statuses = db.session.scalars(select(Task.status).order_by(Task.id)).all()
    assert statuses == ["done", "open"]


def test_a_message_answered_before_its_event_is_handled_gets_no_task(client, clinic, inline_jobs):
    me = Actor(tenant_id=clinic["me"].tenant_id, user_id=clinic["me"].id, role="patient")
    thread = services.start_thread(me, clinic["me"].patient_id, subject="Quick one", body="Is it fasting?")
    coach = Actor(tenant_id=clinic["coach"].tenant_id, user_id=clinic["coach"].id, role="coach")
    with all_tenants("test"):
        db.session.execute(delete(Task))  # as if the queue had not handled the event yet
        sent = db.session.scalar(
            select(PortalEvent).where(PortalEvent.kind == services.SENT_KIND).order_by(PortalEvent.id.desc())
        )
        db.session.execute(update(PortalEvent).where(PortalEvent.id == sent.id).values(handled_at=None))
        db.session.commit()
    services.staff_reply(coach, thread.id, "Yes, 8 hours.")
    db.session.expire_all()  # the job sees the database, not this test's loaded thread
    events.handle_event(sent.id, sent.tenant_id)
    assert _count(Task) == 0
