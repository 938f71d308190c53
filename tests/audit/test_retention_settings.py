"""Retention settings with their legal floors, and the share access log deleted past its retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent, RetentionSettings
from healthcrm.audit.retention import delete_expired_share_log
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.sharing.models import ShareEvent
from tests.factories import login, make_patient, make_tenant, make_user
from tests.sharing.factories import make_share

GOOD = {
    "audit_years": "7", "share_log_years": "6", "hot_months": "13", "record_adult_years": "10",
    "record_minor_until_age": "28",
}  # fmt: skip


@pytest.fixture
def admin_client(app, client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    login(client, admin.email)
    return tenant, client


def test_the_page_shows_the_defaults_and_saves_with_an_audit_event(admin_client):
    tenant, client = admin_client
    page = client.get("/admin/retention").get_data(as_text=True)
    assert 'value="7"' in page and "HIPAA 45 CFR 164.316" in page
    response = client.post("/admin/retention", data={**GOOD, "audit_years": "8"})
    assert response.status_code == 303
    saved = db.session.scalar(select(RetentionSettings))
    assert saved.audit_years == 8 and saved.tenant_id == tenant.id
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "retention.settings_changed"))
    assert event.changed_fields == '["audit_years"]'


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("audit_years", "5", "at least 6 years (HIPAA 45 CFR 164.316(b)(2))"),
        ("share_log_years", "1", "accountable for 6 years"),
        ("hot_months", "1", "At least 3 months"),
        ("record_adult_years", "2", "at least 6 years after the last visit"),
        ("record_minor_until_age", "18", "at least until age 21"),
        ("audit_years", "seven", "enter a whole number"),
        ("audit_years", "99999999", "enter a whole number"),
        ("hot_months", "500", "at most 120"),
    ],
)
def test_a_value_below_the_floor_is_refused_and_nothing_saved(admin_client, field, value, message):
    _, client = admin_client
    response = client.post("/admin/retention", data={**GOOD, field: value})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(RetentionSettings)) is None


def test_only_admins(app, client):
    login(client, make_user(make_tenant(), "doctor").email)
    assert client.get("/admin/retention").status_code == 403
    assert client.post("/admin/retention", data=GOOD).status_code == 403


def test_the_share_log_past_its_retention_is_deleted_and_the_deletion_recorded(app):
    tenant = make_tenant()
    share = make_share(make_patient(tenant))
    old = ShareEvent(
        tenant_id=tenant.id, share_id=share.id, kind="open", occurred_at=utcnow() - timedelta(days=7 * 366)
    )
    recent = ShareEvent(
        tenant_id=tenant.id, share_id=share.id, kind="open", occurred_at=utcnow() - timedelta(days=30)
    )
    db.session.add_all([old, recent])
    db.session.commit()
    assert delete_expired_share_log() == 1
    assert [e.id for e in db.session.scalars(select(ShareEvent))] == [recent.id]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "share_log.retention_deleted"))
    assert event.tenant_id == tenant.id and event.changed_fields == '["rows_1"]'
    assert delete_expired_share_log() == 0  # idempotent
