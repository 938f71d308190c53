"""Storage alerts: thresholds set by admins (audited), raised once per crossing with a notice and an email
to every admin, re-armed only when the figure goes back below, safe with two jobs at once."""

from __future__ import annotations

import json
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.errors import NotAllowed
from healthcrm.extensions import db
from healthcrm.portal.models import Notification
from healthcrm.storage_cost import alerts, metrics
from healthcrm.storage_cost.models import StorageAlert, StorageThreshold
from tests.concurrency import parallel
from tests.factories import make_patient, make_tenant, make_user

from .data import MB, NOW, add_file, at


def _clinic():
    tenant = make_tenant()
    admins = [make_user(tenant, "admin"), make_user(tenant, "admin")]
    make_user(tenant, "admin", active=False)
    make_user(tenant, "doctor")
    return tenant, make_patient(tenant), admins


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


def _emails(outbox_dir) -> list:
    found = []
    for path in sorted(outbox_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["Subject"].startswith("Storage alert"):
            found.append(message)
    return found


def test_admins_set_thresholds_audited_and_bad_input_changes_nothing(app):
    tenant, _, (admin, _) = _clinic()
    assert alerts.set_thresholds(_actor(admin), {"monthly_cost": "12.5", "total_stored": "2048"}) == [
        "monthly_cost", "total_stored",
    ]  # fmt: skip
    assert alerts.form_values(tenant.id) == {"monthly_cost": "12.5", "total_stored": "2048"}
    limits = {t.kind: t.limit_value for t in alerts.thresholds(tenant.id)}
    assert limits == {"monthly_cost": 12_500_000, "total_stored": 2048 * MB, "weekly_growth": None}
    events = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.id, AuditEvent.action == "storage.threshold_changed"
        )
    ).all()
    assert sorted(json.loads(e.changed_fields)[0] for e in events) == ["monthly_cost", "total_stored"]

    for wrong in ({"monthly_cost": "lots"}, {"total_stored": "-1"}, {"monthly_cost": "0.0000001"}):
        with pytest.raises(alerts.ThresholdError):
            alerts.set_thresholds(_actor(admin), wrong)
    db.session.rollback()
    assert {t.kind: t.limit_value for t in alerts.thresholds(tenant.id)} == limits
    assert alerts.set_thresholds(_actor(admin), {"monthly_cost": "12.50", "total_stored": "2048"}) == []
    doctor = make_user(tenant, "doctor")
    with pytest.raises(NotAllowed):
        alerts.set_thresholds(_actor(doctor), {"monthly_cost": "1"})


def test_a_crossing_alerts_once_and_rearms_only_below(app, outbox_dir, drain_jobs):
    tenant, patient, (admin, second_admin) = _clinic()
    alerts.set_thresholds(_actor(admin), {"total_stored": "10"})  # 10 MB
    with at():
        add_file(tenant, patient, size=12 * MB)
        metrics.record_clinic(tenant.id)
        metrics.record_clinic(tenant.id)  # still above: nothing more
    drain_jobs()
    history = alerts.history(tenant.id)
    assert [(a.kind, a.value, a.limit_value, a.cleared_at) for a in history] == [
        ("total_stored", 12 * MB, 10 * MB, None)
    ]
    mails = _emails(outbox_dir)
    assert sorted(m["To"] for m in mails) == sorted([admin.email, second_admin.email])
    body = mails[0].get_body(("plain",)).get_content()
    assert "Total stored: 12 MB, above your limit of 10 MB" in body
    notices = db.session.scalars(
        select(Notification).where(Notification.tenant_id == tenant.id, Notification.kind == "storage_alert")
    ).all()
    assert sorted(n.user_id for n in notices) == sorted([admin.id, second_admin.id])
    assert notices[0].link == "/admin/storage"

    # Back below the limit (a file goes): cleared and re-armed; above again: a second alert and email.
    version = db.session.scalar(select(StorageAlert).where(StorageAlert.tenant_id == tenant.id))
    assert version.emailed_at is not None
    with at(NOW + timedelta(days=1)):
        from healthcrm.files.models import AttachmentVersion

        db.session.execute(
            AttachmentVersion.__table__.update()
            .where(AttachmentVersion.tenant_id == tenant.id)
            .values(stored_size=5 * MB)
        )
        db.session.commit()
        metrics.record_clinic(tenant.id)
    [cleared] = alerts.history(tenant.id)
    assert cleared.cleared_at is not None
    assert (
        db.session.scalar(
            select(StorageThreshold.above).where(
                StorageThreshold.tenant_id == tenant.id, StorageThreshold.kind == "total_stored"
            )
        )
        is False
    )
    with at(NOW + timedelta(days=2)):
        add_file(tenant, patient, size=8 * MB)
        metrics.record_clinic(tenant.id)
    drain_jobs()
    assert [a.value for a in alerts.history(tenant.id)] == [13 * MB, 12 * MB]
    assert len(_emails(outbox_dir)) == 4
    actions = db.session.scalars(
        select(AuditEvent.action).where(
            AuditEvent.tenant_id == tenant.id, AuditEvent.action.like("storage.alert%")
        )
    ).all()
    assert actions == ["storage.alert_raised", "storage.alert_cleared", "storage.alert_raised"]


def test_a_cost_limit_below_the_current_cost_alerts_after_the_job(app, outbox_dir, drain_jobs):
    tenant, patient, (admin, _) = _clinic()
    with at():
        # 900 MB in Standard ($0.020215 a month) and 30 PUTs a month (one a day: $0.00015).
        add_file(tenant, patient, size=900 * MB)
        metrics.record_clinic(tenant.id)
        alerts.set_thresholds(_actor(admin), {"monthly_cost": "0.02"})
        assert alerts.history(tenant.id) == []
        metrics.record_clinic(tenant.id)
    drain_jobs()
    [alert] = alerts.history(tenant.id)
    assert (alert.kind, alert.value, alert.limit_value) == ("monthly_cost", 20_365, 20_000)
    assert (
        "Monthly cost: $0.020365, above your limit of $0.02"
        in _emails(outbox_dir)[0].get_body(("plain",)).get_content()
    )


def test_changing_a_limit_rearms_it(app, drain_jobs):
    tenant, patient, (admin, _) = _clinic()
    alerts.set_thresholds(_actor(admin), {"total_stored": "1"})
    with at():
        add_file(tenant, patient, size=3 * MB)
        metrics.record_clinic(tenant.id)
        alerts.set_thresholds(_actor(admin), {"total_stored": "2"})
        metrics.record_clinic(tenant.id)
    drain_jobs()
    assert [a.limit_value for a in alerts.history(tenant.id)] == [2 * MB, 1 * MB]


def test_weekly_growth_compares_with_a_week_before(app):
    tenant, patient, (admin, _) = _clinic()
    alerts.set_thresholds(_actor(admin), {"weekly_growth": "5"})
    with at(NOW - timedelta(days=7)):
        add_file(tenant, patient, size=MB, created=NOW - timedelta(days=7))
        metrics.record_clinic(tenant.id)
    with at():
        add_file(tenant, patient, size=4 * MB)
        assert alerts.figures_for(tenant.id, metrics.record_clinic(tenant.id).day).weekly_growth == 4 * MB
        assert alerts.history(tenant.id) == []
        add_file(tenant, patient, size=2 * MB)
        metrics.record_clinic(tenant.id)
    [alert] = alerts.history(tenant.id)
    assert (alert.kind, alert.value) == ("weekly_growth", 6 * MB)


def test_two_jobs_at_once_raise_one_alert(app, drain_jobs):
    tenant, patient, (admin, _) = _clinic()
    alerts.set_thresholds(_actor(admin), {"total_stored": "1"})
    with at():
        add_file(tenant, patient, size=2 * MB)
        day = metrics.record_day(tenant.id).day
    tenant_id = tenant.id

    def check(_):
        with at():
            return alerts.check_thresholds(tenant_id, day)

    outcomes = parallel(2, app, check)
    drain_jobs()
    assert sorted(len(found) for found in outcomes) == [0, 1], outcomes
    assert len(alerts.history(tenant_id)) == 1


def test_the_email_job_sends_once(app, outbox_dir, drain_jobs):
    tenant, patient, (admin, _second_admin) = _clinic()
    alerts.set_thresholds(_actor(admin), {"total_stored": "1"})
    with at():
        add_file(tenant, patient, size=2 * MB)
        metrics.record_clinic(tenant.id)
    drain_jobs()
    [alert] = alerts.history(tenant.id)
    assert alerts.email_alert(alert.id, tenant.id) == 0
    assert alerts.email_alert(alert.id, make_tenant().id) == 0  # another clinic's id: nothing
    assert len(_emails(outbox_dir)) == 2
