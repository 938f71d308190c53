"""The storage JSON API: the dashboard's figures for admins, JSON 400 for bad parameters, 403 for other
roles, never another clinic's data, GETs without a CSRF token."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest

from healthcrm.accounts import api_tokens
from healthcrm.audit.services import Actor
from healthcrm.storage_cost import alerts, dashboard, metrics
from healthcrm.storage_cost.api_views import bp
from healthcrm.storage_cost.charts import dollars
from tests.factories import PASSWORD, login, make_patient, make_tenant, make_user

from .data import GB, MB, add_file, at

TODAY = date(2031, 3, 10)
API_PATHS = ("metrics", "costs", "trends", "alerts")


@pytest.fixture
def clinics(app):
    tenant, other = make_tenant(), make_tenant()
    admin, other_admin = make_user(tenant, "admin"), make_user(other, "admin")
    patient, stranger = make_patient(tenant), make_patient(other)
    alerts.set_thresholds(Actor(tenant_id=tenant.id, user_id=admin.id, role="admin"), {"total_stored": "1"})
    with at():
        add_file(tenant, patient, size=3 * MB, storage_class="INTELLIGENT_TIERING")
        add_file(other, stranger, size=5 * GB)
        for days in range(40, 0, -1):
            for clinic in (tenant, other):
                metrics.record_day(clinic.id, TODAY - timedelta(days=days))
        metrics.record_clinic(tenant.id)
        metrics.record_clinic(other.id)
    return tenant, other, admin, other_admin


def test_metrics_and_costs_are_the_dashboards(app, client, clinics):
    tenant, _, admin, _ = clinics
    with at():
        login(client, admin.email)
        found = client.get("/api/storage/metrics")
        costs = client.get("/api/storage/costs")
        current = dashboard.current(tenant.id, dashboard.prices())
    assert found.status_code == 200 and found.mimetype == "application/json"
    body = found.get_json()
    assert (body["clinic_day"], body["recorded_day"], body["objects"], body["bytes_stored"]) == (
        "2031-03-10", "2031-03-10", 1, 3 * MB,
    )  # fmt: skip
    assert body["by_class"] == [
        {"storage_class": "INTELLIGENT_TIERING", "objects": 1, "bytes_stored": 3 * MB}
    ]
    assert {s["bucket"]: s["objects"] for s in body["by_size"]}["1m_10m"] == 1
    cost = costs.get_json()
    assert cost["month_cost"] == dollars(current.estimate.total)
    assert cost["prices"] == {"source": dashboard.prices().source, "taken": dashboard.prices().taken}
    assert cost["by_class"][0]["monitoring"] == dollars(Fraction("0.0025") / 1000)
    assert cost["forecast"]["method"] == "least squares over the last 90 days of the series"
    assert len(cost["forecast"]["months"]) == 3


def test_trends_by_span_and_bad_parameters_are_json_400(app, client, clinics):
    _, _, admin, _ = clinics
    with at():
        login(client, admin.email)
        thirty = client.get("/api/storage/trends").get_json()
        ninety = client.get("/api/storage/trends?days=90").get_json()
        wrong = client.get("/api/storage/trends?days=31")
        unknown = client.get("/api/storage/metrics?tenant_id=1")
    assert (thirty["days"], len(thirty["points"])) == (30, 30)
    assert (ninety["days"], len(ninety["points"])) == (90, 41)
    assert thirty["points"][-1] == {
        "day": "2031-03-10", "bytes_stored": 3 * MB, "bytes_original": 3 * MB,
        "month_cost": thirty["points"][-1]["month_cost"], "bytes_by_class": {"INTELLIGENT_TIERING": 3 * MB},
    }  # fmt: skip
    assert wrong.status_code == 400 and wrong.get_json()["detail"] == "days must be one of 30, 90 or 365"
    assert unknown.status_code == 400 and "tenant_id" in unknown.get_json()["detail"]


def test_alerts_list_the_clinics_own(app, client, clinics):
    _tenant, _, admin, other_admin = clinics
    with at():
        login(client, admin.email)
        mine = client.get("/api/storage/alerts").get_json()
    assert mine["thresholds"] == [{"kind": "total_stored", "unit": "bytes", "limit": MB, "above": True}]
    assert [(a["kind"], a["value"], a["cleared_at"]) for a in mine["history"]] == [
        ("total_stored", 3 * MB, None)
    ]
    with at():
        client.post("/logout", data={})
        login(client, other_admin.email)
        theirs = client.get("/api/storage/alerts").get_json()
        their_metrics = client.get("/api/storage/metrics").get_json()
    assert theirs == {"thresholds": [], "history": []}
    assert their_metrics["bytes_stored"] == 5 * GB


def test_others_get_json_403_and_only_gets_are_served(app, client, clinics):
    tenant = clinics[0]
    login(client, make_user(tenant, "doctor").email)
    for path in ("metrics", "costs", "trends", "alerts"):
        refused = client.get(f"/api/storage/{path}")
        assert refused.status_code == 403 and refused.get_json()["status"] == 403
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith(f"{bp.name}.")]
    assert all(rule.methods - {"HEAD", "OPTIONS"} == {"GET"} for rule in rules)


def test_an_admins_api_token_reads_the_same_figures_and_a_doctors_is_refused(app, client, clinics):
    tenant, _, admin, _ = clinics
    doctor = make_user(tenant, "doctor")
    with at():  # the figures' day, and the tokens' (they expire in 90 days)
        _, admin_token = api_tokens.create_token(_actor(admin), admin, "storage report", 90, PASSWORD)
        _, doctor_token = api_tokens.create_token(_actor(doctor), doctor, "mine", 90, PASSWORD)
        login(client, admin.email)
        by_session = {path: client.get(f"/api/storage/{path}").get_json() for path in API_PATHS}
        client.get("/logout")
    anonymous = app.test_client()
    with at():
        for path in API_PATHS:
            answer = anonymous.get(f"/api/storage/{path}", headers=_bearer(admin_token))
            assert answer.status_code == 200, path
            assert answer.get_json() == by_session[path], path
            assert "Set-Cookie" not in answer.headers
            refused = anonymous.get(
                f"/api/storage/{path}", headers={"Authorization": f"Bearer {doctor_token}"}
            )
            assert refused.status_code == 403, path
        wrong = anonymous.get("/api/storage/metrics", headers={"Authorization": "Bearer hcrm_not-a-token"})
    assert wrong.status_code == 401


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def _bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}
