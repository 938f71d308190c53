"""Signed checkpoints: deleting the newest audit rows (and the head row that names them) leaves a valid,
shorter chain; the checkpoint in storage still names the event that existed, so the gap is found."""

from __future__ import annotations

import io
import json
from email import message_from_bytes

import boto3
import pytest
from flask import current_app
from sqlalchemy import select

from healthcrm.audit import alerts
from healthcrm.audit.checkpoints import verify_checkpoints, write_checkpoint
from healthcrm.audit.models import AuditEvent, AuditIntegrityAlert
from healthcrm.audit.services import Actor, record_event, verify_chain
from healthcrm.extensions import db
from healthcrm.files.storage import STORAGE_EXTENSION, S3Storage, get_storage
from tests.audit.tampering import cut_tail
from tests.factories import login, make_tenant, make_user
from tests.files.conftest import moto_url as moto_url  # the S3 server fixture, shared


@pytest.fixture(autouse=True)
def _forget_checkpoints(app):
    """Tests may share one storage folder (with a real worker): leave no checkpoint for the next clinic 1."""
    yield
    storage = get_storage(current_app)
    for key in storage.list_keys(""):
        if "/audit-checkpoints/" in key:
            storage.delete(key)


def _events(tenant_id: int, count: int) -> list[int]:
    ids = [record_event(Actor(tenant_id=tenant_id), "test.event").id for _ in range(count)]
    db.session.commit()
    return ids


def test_a_checkpoint_is_signed_and_names_the_chain_head(app):
    tenant = make_tenant()
    ids = _events(tenant.id, 3)
    written = write_checkpoint(tenant.id)
    assert written.event_id == ids[-1] and written.key.startswith(f"{tenant.id}/audit-checkpoints/")
    with get_storage(current_app).open_stream(written.key) as stream:
        stored = json.loads(stream.read())
    assert stored["checkpoint"]["hash"] == db.session.get(AuditEvent, ids[-1]).hash
    assert stored["signature"]
    report = verify_checkpoints(tenant.id)
    assert report.intact and report.checked == 1


def test_deleting_the_newest_rows_is_found_from_the_checkpoint(app):
    tenant = make_tenant()
    ids = _events(tenant.id, 6)
    write_checkpoint(tenant.id)
    cut_tail(tenant.id, ids[3])
    assert verify_chain(tenant.id, all_chains=False).intact  # the chain alone cannot see it
    report = verify_checkpoints(tenant.id)
    assert not report.intact
    problem = report.problems[0]
    assert problem.first_bad_event_id == ids[3]
    assert f"3 missing, after event {ids[2]} up to event {ids[5]}" in problem.description

    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"3 missing, after event {ids[2]} up to event {ids[5]}" in result.output


def test_an_altered_checkpoint_fails_its_signature(app):
    tenant = make_tenant()
    _events(tenant.id, 2)
    written = write_checkpoint(tenant.id)
    storage = get_storage(current_app)
    with storage.open_stream(written.key) as stream:
        stored = json.loads(stream.read())
    stored["checkpoint"]["event_id"] = 1
    storage.put_stream(written.key, io.BytesIO(json.dumps(stored).encode()), "application/json")
    report = verify_checkpoints(tenant.id)
    assert not report.intact
    assert "signature does not match" in report.problems[0].description


def test_flask_audit_checkpoint_command(app):
    tenant = make_tenant()
    _events(tenant.id, 1)
    result = app.test_cli_runner().invoke(args=["audit", "checkpoint", "--tenant", str(tenant.id)])
    assert result.exit_code == 0, result.output
    assert f"Clinic {tenant.id}: event" in result.output
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "Checkpoints agree with the log: 1 checked" in result.output


def test_the_nightly_check_alerts_admins_once_and_shows_a_banner(app, client, outbox_dir):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    ids = _events(tenant.id, 4)
    write_checkpoint(tenant.id)
    assert alerts.nightly_verify() == "0 new findings"
    cut_tail(tenant.id, ids[2])

    assert alerts.nightly_verify() == "1 new findings"
    mails = [message_from_bytes(path.read_bytes()) for path in outbox_dir.glob("*.eml")]
    assert [m["To"] for m in mails] == [admin.email]
    body = mails[0].get_payload(0).get_payload(decode=True).decode()
    assert f"2 missing, after event {ids[1]} up to event {ids[3]}" in body
    # The next night finds the same: no second email.
    assert alerts.nightly_verify() == "0 new findings"
    assert len(list(outbox_dir.glob("*.eml"))) == 1

    login(client, admin.email)
    page = client.get("/audit").get_data(as_text=True)
    assert "The audit log check of" in page and f"after event {ids[1]} up to event {ids[3]}" in page
    alert = db.session.scalar(select(AuditIntegrityAlert))
    assert client.post(f"/audit/alerts/{alert.id}/acknowledge", data={}).status_code == 302
    assert "The audit log check of" not in client.get("/audit").get_data(as_text=True)
    assert client.post(f"/audit/alerts/{alert.id}/acknowledge", data={}).status_code == 404  # once


def test_another_clinics_alert_cannot_be_acknowledged(app, client):
    mine, theirs = make_tenant(), make_tenant()
    admin = make_user(mine, "admin")
    db.session.add(AuditIntegrityAlert(tenant_id=theirs.id, description="theirs"))
    db.session.commit()
    alert = db.session.scalar(select(AuditIntegrityAlert))
    login(client, admin.email)
    assert client.post(f"/audit/alerts/{alert.id}/acknowledge", data={}).status_code == 404
    assert db.session.get(AuditIntegrityAlert, alert.id).acknowledged_at is None


def test_on_s3_with_object_lock_checkpoints_are_kept_in_compliance_mode(app, moto_url):
    bucket = "checkpoints-locked"
    storage = S3Storage(bucket=bucket, endpoint_url=moto_url, region="us-east-1")
    storage.ensure_bucket(object_lock=True)
    assert storage.object_lock_enabled()
    current_app.extensions[STORAGE_EXTENSION] = storage
    tenant = make_tenant()
    _events(tenant.id, 1)
    written = write_checkpoint(tenant.id)
    assert written.locked
    client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    head = client.head_object(Bucket=bucket, Key=written.key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert verify_checkpoints(tenant.id).intact
    assert storage.list_keys(f"{tenant.id}/") == [written.key]
