"""The staff's notifications: `notify_staff` (staff of the clinic only, active ones), the list (newest first,
a page at a time, only one's own), mark read and mark all read (plain posts and htmx), and the badge in the
staff bar, whose poll does not keep an idle session alive."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.portal import notifications
from healthcrm.portal.models import Notification
from healthcrm.tenant_scope import all_tenants
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

HX = {"HX-Request": "true"}


@pytest.fixture
def staff(app):
    tenant = make_tenant()
    return tenant, make_user(tenant, "admin"), make_user(tenant, "nurse")


def notice(
    user, text: str = "The file you asked for is ready", link: str | None = "/patients"
) -> Notification:
    [made] = notifications.notify_staff(user.tenant_id, [user.id], "restore", text, link)
    db.session.commit()
    return made


def unread_of(user) -> int:
    db.session.expire_all()
    return notifications.unread_count(user)


def test_notify_staff_reaches_active_staff_of_the_clinic_only(app, staff):
    tenant, admin, nurse = staff
    gone = make_user(tenant, "doctor", active=False)
    patient = make_portal_user(make_patient(tenant))
    elsewhere = make_user(make_tenant(), "admin")
    made = notifications.notify_staff(
        tenant.id,
        [admin.id, nurse.id, gone.id, patient.id, elsewhere.id, 999999],
        "storage_alert",
        "The clinic's storage cost passed $50 a month",
        "/admin/storage",
    )
    db.session.commit()
    assert sorted(n.user_id for n in made) == sorted([admin.id, nurse.id])
    assert {(n.tenant_id, n.kind, n.link) for n in made} == {(tenant.id, "storage_alert", "/admin/storage")}
    with all_tenants("test"):
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 2
    assert notifications.notify_staff(tenant.id, [], "storage_alert", "nobody") == []


def test_the_list_shows_ones_own_newest_first_with_their_links(client, staff):
    _, admin, nurse = staff
    notice(admin, "First: a restore is ready", "/patients/1/records/2")
    notice(admin, "Second: storage alert", None)
    notice(admin, "Third: an outside link", "https://evil.example/phish")
    notice(nurse, "The nurse's own")
    login(client, admin.email)
    page = client.get("/notifications").get_data(as_text=True)
    assert page.index("Third") < page.index("Second") < page.index("First")
    assert "The nurse&#39;s own" not in page and "The nurse's own" not in page
    assert 'href="/patients/1/records/2">Open</a>' in page
    assert "evil.example" not in page.split("Third")[1].split("</li>")[0].replace(
        "Third: an outside link", ""
    )
    assert page.count(">Open</a>") == 1
    assert "Mark all as read" in page and page.count("Mark as read") == 3


def test_marking_read_changes_only_ones_own(client, staff):
    _, admin, nurse = staff
    mine, theirs = notice(admin), notice(nurse)
    other_clinic = notice(make_user(make_tenant(), "admin"))
    login(client, admin.email)
    for foreign in (theirs, other_clinic):
        assert client.post(f"/notifications/{foreign.id}/read", data={}).status_code == 404
    assert client.post("/notifications/999999/read", data={}).status_code == 404
    answer = client.post(f"/notifications/{mine.id}/read", data={})
    assert answer.status_code == 303 and answer.headers["Location"] == "/notifications"
    assert unread_of(admin) == 0 and unread_of(nurse) == 1
    notice(admin, "again")
    notice(admin, "and again")
    client.post("/notifications/read-all", data={})
    assert unread_of(admin) == 0 and unread_of(nurse) == 1
    with all_tenants("test"):
        assert db.session.get(Notification, other_clinic.id).read_at is None


def test_marking_read_in_place_answers_the_list_and_tells_the_badge(client, staff):
    _, admin, _ = staff
    first = notice(admin, "first")
    notice(admin, "second")
    login(client, admin.email)
    answer = client.post(f"/notifications/{first.id}/read", data={}, headers=HX)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" not in body
    assert answer.headers["HX-Trigger"] == "notifications-changed"
    assert body.count("Mark as read") == 1
    answer = client.post("/notifications/read-all", data={}, headers=HX)
    assert "Mark as read" not in answer.get_data(as_text=True) and unread_of(admin) == 0


def test_the_staff_bar_carries_the_badge_and_its_poll(client, staff):
    _, admin, _ = staff
    login(client, admin.email)
    bar = client.get("/patients").get_data(as_text=True)
    assert 'id="staff-notification-badge"' in bar and 'href="/notifications"' in bar
    assert 'data-hx-get="/notifications/badge"' in bar
    assert 'data-hx-trigger="every 20s, notifications-changed from:body"' in bar
    for n in range(3):
        notice(admin, f"notice {n}")
    badge = client.get("/notifications/badge", headers=HX)
    body = badge.get_data(as_text=True).strip()
    assert badge.status_code == 200 and body.startswith('<a class="bell" href="/notifications"')
    assert 'aria-label="3 unread"' in body and "<html" not in body
    # Without JavaScript each page load shows the count.
    assert 'aria-label="3 unread"' in client.get("/patients").get_data(as_text=True)


def test_a_long_backlog_reads_99_plus(client, staff):
    _, admin, _ = staff
    notifications.notify_staff(admin.tenant_id, [admin.id], "restore", "x")
    db.session.add_all(
        Notification(tenant_id=admin.tenant_id, user_id=admin.id, kind="restore", text=f"n{n}")
        for n in range(120)
    )
    db.session.commit()
    login(client, admin.email)
    assert ">99+</span>" in client.get("/notifications/badge").get_data(as_text=True)
    page = client.get("/notifications").get_data(as_text=True)
    older = page.split("/notifications?before=")[1].split('"')[0]
    assert page.count('class="card notification') == notifications.LIST_PAGE_SIZE
    rest = client.get(f"/notifications?before={older}").get_data(as_text=True)
    assert "<p>n119</p>" in page and "<p>n90</p>" in page and "<p>n89</p>" not in page
    assert "<p>n89</p>" in rest and "<p>n90</p>" not in rest


def test_patients_and_anonymous_visitors_have_no_staff_notifications(app, client, staff):
    tenant, _, _ = staff
    assert client.get("/notifications").status_code == 302
    assert client.get("/notifications/badge", headers=HX).status_code == 401
    patient = make_portal_user(make_patient(tenant))
    login(client, patient.email)
    assert client.get("/notifications").status_code == 403
    assert client.get("/notifications/badge").status_code == 403
    assert "staff-notification-badge" not in client.get("/portal").get_data(as_text=True)


def test_the_badges_poll_does_not_keep_an_idle_session_alive(app, staff):
    _, _, nurse = staff
    start = utcnow().replace(tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        client = app.test_client()
        login(client, nurse.email)
        for minute in range(1, 17):  # the page polls every 20 s; a minute apart is enough here
            clock.move_to(start + timedelta(minutes=minute))
            answer = client.get("/notifications/badge", headers=HX)
            if minute < 15:
                assert answer.status_code == 200, minute
        assert answer.status_code == 401  # idle for 16 minutes: signed out, though the page kept asking
        assert client.get("/patients").status_code == 302
        # A real page view is activity, as before.
        login(client, nurse.email)
        clock.move_to(start + timedelta(minutes=26))
        assert client.get("/patients").status_code == 200
        clock.move_to(start + timedelta(minutes=40))
        assert client.get("/patients").status_code == 200


def test_the_patients_badge_poll_does_not_keep_their_session_alive_either(app, staff):
    tenant, _, _ = staff
    patient = make_portal_user(make_patient(tenant))
    start = utcnow().replace(tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        client = app.test_client()
        login(client, patient.email)
        for minute in range(5, 35, 5):
            clock.move_to(start + timedelta(minutes=minute))
            client.get("/portal/notifications/badge", headers=HX)
        clock.move_to(start + timedelta(minutes=31))
        assert client.get("/portal").status_code == 302  # 30 minutes idle for patients
