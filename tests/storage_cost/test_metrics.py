"""The daily storage metrics: the figures of a known clinic, one row per day however often (or however
many workers at once) it runs, the clinic's own day and nothing of another clinic."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from healthcrm.extensions import db
from healthcrm.jobs.periodic import PERIODIC
from healthcrm.storage_cost import metrics
from healthcrm.storage_cost.models import StorageMetric
from tests.concurrency import parallel
from tests.factories import make_patient, make_tenant

from .data import GB, KB, MB, NOW, add_access, add_file, add_restore, at

TODAY = date(2031, 3, 10)  # NOW in Chicago


def _clinic():
    tenant = make_tenant()
    return tenant, make_patient(tenant)


def _known_files(tenant, patient):
    small = add_file(tenant, patient, size=100 * KB, created=NOW - timedelta(days=1))
    scan = add_file(tenant, patient, size=2 * MB, stored=500 * KB, storage_class="INTELLIGENT_TIERING",
                    preview=True)  # fmt: skip
    old = add_file(tenant, patient, size=20 * MB, storage_class="GLACIER", created=NOW - timedelta(days=200))
    study = add_file(tenant, patient, size=150 * MB, stored=120 * MB, storage_class="INTELLIGENT_TIERING",
                     preview=True, frame=True)  # fmt: skip
    return small, scan, old, study


def test_the_figures_of_a_known_clinic(app):
    tenant, patient = _clinic()
    other, other_patient = _clinic()
    with at():
        small, scan, old, study = _known_files(tenant, patient)
        add_file(other, other_patient, size=7 * GB)  # another clinic's: never counted
        add_access(scan, "view", NOW - timedelta(hours=1))
        add_access(scan, "view", NOW - timedelta(hours=2))
        add_access(study, "download", NOW - timedelta(hours=3))
        # 03:00 UTC is 22:00 the day before in Chicago: yesterday's.
        add_access(small, "view", NOW.replace(hour=3))
        add_restore(old, NOW - timedelta(hours=1))
        metrics.record_day(tenant.id, TODAY - timedelta(days=1))
        row = metrics.record_clinic(tenant.id)

    assert row.day == TODAY
    assert row.objects == 4
    assert row.bytes_original == 100 * KB + 2 * MB + 20 * MB + 150 * MB
    assert row.bytes_stored == 100 * KB + 500 * KB + 20 * MB + 120 * MB
    assert row.breakdown == {
        "STANDARD": {"lt_128k": [1, 100 * KB, 100 * KB]},
        "INTELLIGENT_TIERING": {"128k_1m": [1, 500 * KB, 2 * MB], "ge_100m": [1, 120 * MB, 150 * MB]},
        "GLACIER": {"10m_100m": [1, 20 * MB, 20 * MB]},
    }
    # Today: the scan and its preview, the study with its preview and its first frame.
    assert (row.puts, row.views, row.downloads) == (5, 2, 1)
    assert (row.restores, row.retrieved_bytes, row.restores_by_class) == (
        1,
        20 * MB,
        {"GLACIER": [1, 20 * MB]},
    )
    yesterday = db.session.scalar(
        select(StorageMetric).where(
            StorageMetric.tenant_id == tenant.id, StorageMetric.day == TODAY - timedelta(days=1)
        )
    )
    assert (yesterday.puts, yesterday.views, yesterday.downloads, yesterday.restores) == (1, 1, 0, 0)
    assert (
        db.session.scalar(
            select(func.count()).select_from(StorageMetric).where(StorageMetric.tenant_id == other.id)
        )
        == 0
    )


def test_running_again_keeps_one_row_with_fresh_figures(app):
    tenant, patient = _clinic()
    with at():
        add_file(tenant, patient, size=MB)
        first = metrics.record_clinic(tenant.id)
        first_id = first.id
        again = metrics.record_clinic(tenant.id)
        assert (again.id, again.objects, again.bytes_stored) == (first_id, 1, MB)
        add_file(tenant, patient, size=3 * MB)
        later = metrics.record_clinic(tenant.id)
    assert (later.id, later.objects, later.bytes_stored, later.puts) == (first_id, 2, 4 * MB, 2)
    rows = db.session.scalar(
        select(func.count()).select_from(StorageMetric).where(StorageMetric.tenant_id == tenant.id)
    )
    assert rows == 1


def test_two_workers_at_once_leave_one_row(app):
    tenant, patient = _clinic()
    with at():
        add_file(tenant, patient, size=5 * MB)
    tenant_id = tenant.id

    def record(_):
        with at():
            return metrics.record_day(tenant_id, TODAY).objects

    outcomes = parallel(2, app, record)
    assert outcomes == [1, 1]
    rows = db.session.scalars(select(StorageMetric).where(StorageMetric.tenant_id == tenant_id)).all()
    assert [(r.day, r.objects, r.bytes_stored) for r in rows] == [(TODAY, 1, 5 * MB)]


def test_the_day_is_the_clinics_day(app):
    tenant = make_tenant(timezone="Asia/Tokyo")
    with at():
        row = metrics.record_day(tenant.id)
    assert row.day == date(2031, 3, 11)  # 02:00 the next morning in Tokyo
    assert row.objects == 0 and row.breakdown == {}


def test_the_daily_job_is_registered_and_visits_every_clinic(app):
    assert PERIODIC["storage.metrics"][1] == "healthcrm.storage_cost.metrics:record_all_clinics"
    first, second = make_tenant(), make_tenant()
    with at():
        message = metrics.record_all_clinics()
    assert message.startswith("storage metrics recorded for")
    for tenant in (first, second):
        assert metrics.latest(tenant.id).day == TODAY


def test_flask_storage_metrics_records_a_clinic(app):
    tenant, patient = _clinic()
    with at():
        add_file(tenant, patient, size=2 * MB)
        result = app.test_cli_runner().invoke(args=["storage", "metrics", "--clinic", tenant.slug])
    assert result.exit_code == 0, result.output
    assert f"{tenant.name}: 2031-03-10, 1 objects, 2 MB stored" in result.output
    refused = app.test_cli_runner().invoke(args=["storage", "metrics", "--clinic", "no-such-clinic"])
    assert refused.exit_code != 0 and "no clinic" in refused.output
