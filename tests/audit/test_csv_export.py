"""The audit log's CSV export: a job per request, formula-safe values, 24 hours to download, admins only."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import time_machine
from sqlalchemy import select

from healthcrm.audit.csv_export import COLUMNS, cell
from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor, record_event
from healthcrm.extensions import db
from healthcrm.jobs.models import Job
from tests.factories import login, make_patient, make_tenant, make_user

NOW = datetime(2026, 6, 1, 12, 0)


def _setup(client):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    patient = make_patient(tenant)
    other = make_tenant("Other Clinic")
    record_event(
        Actor(tenant_id=tenant.id, user_id=admin.id, role="admin", user_agent='=HYPERLINK("x")\r\nevil'),
        "test.export_me",
        resource_type="record",
        resource_id="@SUM(1)",
        patient_id=patient.id,
        changed_fields=["phone"],
    )
    record_event(Actor.system(tenant.id), "test.other")
    record_event(Actor.system(other.id), "test.export_me")
    db.session.commit()
    login(client, admin.email)
    return tenant, admin, patient


def _export(client, **form):
    response = client.post("/audit/export", data=form)
    assert response.status_code == 200
    job = db.session.scalars(select(Job).where(Job.kind == "audit.export_csv")).one()
    return response, job


def test_cell_neutralises_formulas_and_line_breaks():
    assert cell("=1+1") == "'=1+1"
    for start in "+-@\t":
        assert cell(f"{start}x") == f"'{start}x"
    assert cell("\rx") == "'\\rx"
    assert cell("a\r\nb") == "a\\r\\nb"
    assert cell(None) == "" and cell(5) == "5"


def test_export_writes_the_filtered_events_of_the_clinic_only(inline_jobs, client):
    with time_machine.travel(NOW, tick=False):
        tenant, admin, patient = _setup(client)
        response, job = _export(client, action="test.export_me")
        db.session.refresh(job)
        assert job.status == "finished" and job.progress == 100 and job.result["rows"] == 1
        assert job.result["key"].startswith(f"{tenant.id}/audit-exports/")
        body = response.get_data(as_text=True)
        assert f"/audit/export/{job.id}/download" in body
        download = client.get(f"/audit/export/{job.id}/download")
        assert download.status_code == 200 and download.mimetype == "text/csv"
        text = download.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == COLUMNS and len(rows) == 2
    row = dict(zip(COLUMNS, rows[1], strict=True))
    assert row["action"] == "test.export_me"
    assert admin.full_name in row["actor"] and row["role"] == "admin"
    assert patient.mrn in row["patient"] and patient.last_name in row["patient"]
    assert row["resource id"] == "'@SUM(1)"
    assert row["user agent"] == '\'=HYPERLINK("x")\\r\\nevil'
    assert row["fields"] == "phone"
    assert row["time UTC"] == "2026-06-01 12:00:00"
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "test.export_me")).first()
    assert row["hash"] == event.hash and row["prev_hash"] == event.prev_hash
    assert "\r\nevil" not in text


def test_the_export_is_audited(inline_jobs, client):
    tenant, admin, _ = _setup(client)
    _export(client, outcome="denied")
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.export")).all()
    assert (event.tenant_id, event.actor_user_id) == (tenant.id, admin.id)


def test_the_download_expires_after_24_hours(inline_jobs, client):
    with time_machine.travel(NOW, tick=False):
        _, admin, _ = _setup(client)
        _, job = _export(client)
    with time_machine.travel(NOW + timedelta(hours=23), tick=False):
        login(client, admin.email)  # the session itself has timed out by then
        assert client.get(f"/audit/export/{job.id}/download").status_code == 200
    with time_machine.travel(NOW + timedelta(hours=25), tick=False):
        login(client, admin.email)
        gone = client.get(f"/audit/export/{job.id}/download")
        assert gone.status_code == 410 and "24 hours" in gone.get_data(as_text=True)


def test_non_admin_is_refused(inline_jobs, client):
    tenant = make_tenant()
    login(client, make_user(tenant, "doctor").email)
    assert client.post("/audit/export", data={}).status_code == 403
    assert not db.session.scalars(select(Job)).all()


def test_another_clinics_export_is_404(inline_jobs, app, client):
    _setup(client)
    other = make_tenant("Third Clinic")
    db.session.add(
        Job(id="x" * 36, tenant_id=other.id, kind="audit.export_csv", label="x", status="finished")
    )
    db.session.commit()
    assert client.get(f"/audit/export/{'x' * 36}/download").status_code == 404
