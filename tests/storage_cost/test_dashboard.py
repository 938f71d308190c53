"""The storage dashboard and the access patterns page: the figures for admins, 403 for everyone else,
another clinic's files and patients never shown, bad parameters 400, the thresholds form in place."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.extensions import db
from healthcrm.storage_cost import metrics
from tests.factories import login, make_patient, make_tenant, make_user

from .data import MB, NOW, add_access, add_file, at


@pytest.fixture
def clinics(app):
    tenant, other = make_tenant(), make_tenant()
    admin = make_user(tenant, "admin")
    patient = make_patient(tenant, first_name="Wanda", last_name="Storewell")
    stranger = make_patient(other, first_name="Otto", last_name="Elsewhere")
    with at(NOW - timedelta(days=400)):
        old = add_file(tenant, patient, size=30 * MB, created=NOW - timedelta(days=400), name="old-scan.pdf")
    with at():
        new = add_file(tenant, patient, size=4 * MB, stored=MB, storage_class="INTELLIGENT_TIERING",
                       name="new-report.pdf")  # fmt: skip
        add_file(other, stranger, size=900 * MB, name="elsewhere.pdf")
        add_access(new, "view", NOW - timedelta(hours=1))
        add_access(old, "download", NOW - timedelta(days=399))
        for days in range(3, 0, -1):
            with at(NOW - timedelta(days=days)):
                metrics.record_clinic(tenant.id)
                metrics.record_clinic(other.id)
        metrics.record_clinic(tenant.id)
        metrics.record_clinic(other.id)
    return tenant, other, admin, patient, stranger


def test_the_admin_sees_usage_cost_trend_and_largest(app, client, clinics):
    tenant, _, admin, _patient, _ = clinics
    with at():
        login(client, admin.email)
        page = client.get("/admin/storage")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for expected in (
        "Storage cost", "31 MB", "34 MB", "Intelligent-Tiering", "Standard", "Wanda", "Files nobody opens",
        "least squares", "storage-class-data", "data-series", "Prices: Amazon S3 public prices",
        "taken 2025-01-15", "Alert history",
    ):  # fmt: skip
        assert expected in html, expected
    assert "Elsewhere" not in html and "elsewhere.pdf" not in html and "900 MB" not in html
    event = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.id, AuditEvent.action == "storage.dashboard_viewed"
        )
    )
    assert event is not None and event.actor_user_id == admin.id


def test_the_trend_switch_answers_its_block_and_a_bad_span_is_400(app, client, clinics):
    _, _, admin, _, _ = clinics
    with at():
        login(client, admin.email)
        fragment = client.get("/admin/storage?days=90", headers={"HX-Request": "true", "HX-Target": "trend"})
        assert fragment.status_code == 200
        text = fragment.get_data(as_text=True)
        assert text.lstrip().startswith('<section class="card" id="trend"') and "<html" not in text
        assert 'aria-current="page">90 days' in text
        assert client.get("/admin/storage?days=365").status_code == 200
        assert client.get("/admin/storage?days=7").status_code == 400
        assert client.get("/admin/storage?days=abc").status_code == 400


@pytest.mark.parametrize("role", ["doctor", "nurse", "coach", "front_desk"])
def test_other_roles_get_403(app, client, clinics, role):
    tenant = clinics[0]
    user = make_user(tenant, role)
    login(client, user.email)  # no travel: the refusal does not depend on the day
    for url in ("/admin/storage", "/admin/storage/access", "/api/storage/metrics"):
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/storage/thresholds", data={"monthly_cost": "1"}).status_code == 403


def test_thresholds_form_saves_or_answers_422_in_place(app, client, clinics):
    _tenant, _, admin, _, _ = clinics
    with at():
        login(client, admin.email)
        wrong = client.post("/admin/storage/thresholds", data={"monthly_cost": "ten", "total_stored": ""},
                            headers={"HX-Request": "true"})  # fmt: skip
        assert wrong.status_code == 422
        text = wrong.get_data(as_text=True)
        assert 'id="thresholds"' in text and "write a number of USD" in text and "<html" not in text
        in_place = client.post(
            "/admin/storage/thresholds", data={"monthly_cost": "0.0002"}, headers={"HX-Request": "true"}
        )
        assert in_place.status_code == 200 and "Alert limits saved" in in_place.get_data(as_text=True)
        saved = client.post(
            "/admin/storage/thresholds", data={"monthly_cost": "0.0001", "total_stored": "20"}
        )
        assert saved.status_code == 303
        page = client.get("/admin/storage").get_data(as_text=True)
    assert 'value="0.0001"' in page and 'value="20"' in page


def test_record_now_runs_the_job_and_raises_the_alert(app, client, clinics, outbox_dir, drain_jobs):
    _tenant, _, admin, _, _ = clinics
    with at():
        login(client, admin.email)
        client.post("/admin/storage/thresholds", data={"total_stored": "20"})
        assert client.post("/admin/storage/record", data={}).status_code == 303
        drain_jobs()
        page = client.get("/admin/storage").get_data(as_text=True)
    assert "Still above" in page
    assert any(admin.email in path.read_text() for path in outbox_dir.glob("*.eml"))


def test_access_patterns_per_patient_and_file(app, client, clinics):
    tenant, _, admin, patient, stranger = clinics
    with at():
        login(client, admin.email)
        page = client.get("/admin/storage/access")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "Wanda" in html and "new-report.pdf" in html and "storage-month-data" in html
        assert "Elsewhere" not in html
        mine = client.get(f"/admin/storage/access?patient_id={patient.id}")
        assert mine.status_code == 200 and "Files of Wanda" in mine.get_data(as_text=True)
        assert client.get(f"/admin/storage/access?patient_id={stranger.id}").status_code == 404
        assert client.get("/admin/storage/access?patient_id=x").status_code == 400
    event = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.id,
            AuditEvent.action == "storage.access_patterns_viewed",
            AuditEvent.patient_id == patient.id,
        )
    )
    assert event is not None
