"""The admin's audit log viewer: filters, bad input, paging, the detail page, other clinics never shown."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.search import apply_filters, parse_filter
from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from tests.factories import login, make_patient, make_tenant, make_user


def _link(event: AuditEvent) -> str:
    return f'href="/audit/{event.id}"'


@pytest.fixture
def clinic(app, client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    nurse = make_user(tenant, "nurse")
    patient = make_patient(tenant)
    other = make_tenant("Other Clinic")
    nurse_actor = Actor(
        tenant_id=tenant.id, user_id=nurse.id, role="nurse", ip="10.0.0.7", request_id="req-1"
    )
    events = {
        "read": record_event(
            nurse_actor, "test.read", resource_type="record", resource_id=5, patient_id=patient.id
        ),
        "denied": record_event(
            nurse_actor, "test.write", resource_type="record", resource_id=6, outcome="denied"
        ),
        "share": record_event(
            Actor(tenant_id=tenant.id, role="share", share_link_id=77, ip="192.168.1.1"), "test.share_view"
        ),
        "system": record_event(Actor.system(tenant.id), "test.sweep", outcome="failure"),
        "foreign": record_event(Actor.system(other.id), "test.foreign"),
    }
    db.session.commit()
    login(client, admin.email)
    return {"tenant": tenant, "admin": admin, "nurse": nurse, "patient": patient, "events": events}


def _page(client, query: str = "") -> str:
    response = client.get(f"/audit{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _shown(page: str, clinic, *names: str) -> set[str]:
    return {name for name, event in clinic["events"].items() if _link(event) in page}


def test_no_filter_shows_the_clinics_events_only(clinic, client):
    page = _page(client)
    assert _shown(page, clinic) == {"read", "denied", "share", "system"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?action=test.re", {"read"}),
        ("?role=nurse", {"read", "denied"}),
        ("?role=system", {"system"}),
        ("?resource_type=record", {"read", "denied"}),
        ("?outcome=denied", {"denied"}),
        ("?outcome=failure", {"system"}),
        ("?share=77", {"share"}),
        ("?ip=192.168.1.1", {"share"}),
        ("?ip=10.0.0.7&outcome=success", {"read"}),
    ],
)
def test_each_filter(clinic, client, query, expected):
    assert _shown(_page(client, query), clinic) == expected


def test_user_and_patient_filters(clinic, client):
    assert _shown(_page(client, f"?user={clinic['nurse'].id}"), clinic) == {"read", "denied"}
    assert _shown(_page(client, f"?patient={clinic['patient'].id}"), clinic) == {"read"}


def test_htmx_request_gets_the_table_only(clinic, client):
    response = client.get("/audit?outcome=denied", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _link(clinic["events"]["denied"]) in body
    assert "<form" not in body


@pytest.mark.parametrize(
    "query",
    [
        "?patient=abc",
        "?user=-1",
        "?patient=99999999999999999999",
        "?date_from=2026-13-45",
        "?date_to=yesterday",
        "?outcome=maybe",
        "?role=wizard",
        "?ip=not-an-ip",
        "?action=" + "x" * 5000,
        "?before=%00",
    ],
)
def test_bad_input_is_a_message_never_a_500(clinic, client, query):
    page = _page(client, query)
    assert "alert-error" in page
    assert _shown(page, clinic) == {"read", "denied", "share", "system"}


def test_date_range_is_in_clinic_days(app, client):
    tenant = make_tenant(timezone="America/New_York")
    admin = make_user(tenant, "admin")
    with time_machine.travel(datetime(2026, 3, 10, 3, 0), tick=False):  # 9 March, 23:00 in New York
        late = record_event(Actor.system(tenant.id), "test.late")
    with time_machine.travel(datetime(2026, 3, 10, 15, 0), tick=False):
        next_day = record_event(Actor.system(tenant.id), "test.next")
    db.session.commit()
    login(client, admin.email)
    page = _page(client, "?date_from=2026-03-09&date_to=2026-03-09")
    assert _link(late) in page and _link(next_day) not in page
    page = _page(client, "?date_from=2026-03-10")
    assert _link(late) not in page and _link(next_day) in page


def test_swapped_dates_are_swapped_with_a_message():
    filters = parse_filter({"date_from": "2026-03-10", "date_to": "2026-03-01"})
    assert filters.date_from.day == 1 and filters.date_to.day == 10 and filters.errors


def test_apply_filters_works_on_any_model_with_the_columns(app):
    from sqlalchemy import select

    query = apply_filters(select(AuditEvent), AuditEvent, parse_filter({"outcome": "denied", "action": "a%"}))
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    assert "audit_log.outcome = 'denied'" in sql


def test_keyset_paging_newest_first_keeps_the_filter(app, client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    events = [record_event(Actor.system(tenant.id), "test.bulk") for _ in range(55)]
    db.session.commit()
    login(client, admin.email)
    first = _page(client, "?action=test.bulk")
    assert _link(events[-1]) in first and _link(events[4]) not in first
    assert f"before={events[5].id}" in first and "action=test.bulk" in first
    older = _page(client, f"?action=test.bulk&before={events[5].id}")
    assert all(_link(e) in older for e in events[:5]) and _link(events[5]) not in older
    assert "Older events" not in older


def test_detail_page(clinic, client):
    read = clinic["events"]["read"]
    response = client.get(f"/audit/{read.id}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    for value in (read.hash, read.prev_hash, "req-1", "10.0.0.7", "test.read"):
        assert value in body
    assert "Event 1 of the clinic" in body  # the first event of the new clinic's chain
    assert _link(clinic["events"]["denied"]) in body  # the same request
    assert _link(clinic["events"]["share"]) not in body


def test_another_clinics_event_is_404(clinic, client):
    assert client.get(f"/audit/{clinic['events']['foreign'].id}").status_code == 404
    assert client.get("/audit/999999").status_code == 404


def test_non_admin_is_refused(app, client):
    tenant = make_tenant()
    nurse = make_user(tenant, "nurse")
    event = record_event(Actor.system(tenant.id), "test.any")
    db.session.commit()
    login(client, nurse.email)
    assert client.get("/audit").status_code == 403
    assert client.get(f"/audit/{event.id}").status_code == 403
