"""The storage sweeper: untracked old multipart uploads aborted (a tracked one kept, another clinic's kept,
a young one kept), orphan and missing objects reported by area (only the areas the database indexes are
judged), nothing else deleted; the report page, the admins' notice once per new finding, the CLI and the
daily job."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from healthcrm.audit.models import AuditArchive
from healthcrm.audit.services import Actor
from healthcrm.clock import utcnow
from healthcrm.extensions import db
from healthcrm.files import uploads
from healthcrm.files.models import UploadSession
from healthcrm.files.storage import LocalStorage, make_key
from healthcrm.jobs.models import FINISHED, Job
from healthcrm.jobs.periodic import PERIODIC
from healthcrm.jobs.queue import enqueue
from healthcrm.portal.models import Notification
from healthcrm.storage_cost import sweeper
from healthcrm.storage_cost.restore_models import StorageSweep
from tests.storage_cost.restore_fixtures import (
    clinic,
    local_now,
    moto_url,
    other_clinic,
    record_of,
    s3,
    signed_in,
    store,
    stored_file,
)

__all__ = ["clinic", "local_now", "moto_url", "other_clinic", "s3", "store"]

BIG = 6 * 1024 * 1024  # over the multipart threshold: the upload API opens a multipart upload


def _tracked_upload(clinic) -> UploadSession:
    """A browser's multipart upload in progress, as the upload API starts it."""
    draft = record_of(clinic["tenant"], clinic["patient"], clinic["doctor"], status="draft")
    actor = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["doctor"].id, role="doctor")
    plan = uploads.start_upload(actor, draft.id, "big-scan.pdf", BIG, "application/pdf", "big-scan.pdf:1")
    assert plan.multipart
    return plan.session


def _put(storage, key: str, data: bytes = b"x" * 10) -> str:
    storage.put_stream(key, io.BytesIO(data), "application/octet-stream")
    return key


def _keys(storage, tenant_id: int) -> list[str]:
    return storage.list_keys(f"{tenant_id}/")


def _open(storage, tenant_id: int) -> set[str]:
    return {upload.upload_id for upload in storage.list_open_uploads(f"{tenant_id}/")}


def _later(storage):
    """Past the grace period: on the folder a day on; moto dates every upload to 2010 anyway."""
    if isinstance(storage, LocalStorage):
        return time_machine.travel(datetime.now(UTC) + timedelta(hours=25), tick=True)
    return time_machine.travel(datetime.now(UTC), tick=True)


def test_untracked_old_uploads_are_aborted_and_tracked_ones_kept(app, clinic, other_clinic, store):
    tenant = clinic["tenant"].id
    session = _tracked_upload(clinic)
    untracked_key = make_key(tenant, clinic["record"].id, "gone.pdf")
    untracked = store.create_multipart_upload(untracked_key, "application/pdf")
    theirs = store.create_multipart_upload(
        make_key(other_clinic["tenant"].id, other_clinic["record"].id, "theirs.pdf"), "application/pdf"
    )
    # A session that ended (rejected, aborted) tracks nothing: its upload is abandoned too.
    ended_key = make_key(tenant, clinic["record"].id, "ended.pdf")
    ended = store.create_multipart_upload(ended_key, "application/pdf")
    session_row = UploadSession(
        tenant_id=tenant, public_id="e" * 32, record_id=session.record_id, user_id=clinic["doctor"].id,
        filename="ended.pdf", size=BIG, fingerprint="ended", storage_key=ended_key, multipart_id=ended,
        status="aborted",
    )  # fmt: skip
    db.session.add(session_row)
    db.session.commit()
    assert _open(store, tenant) == {session.multipart_id, untracked, ended}
    with _later(store):
        report = sweeper.sweep_clinic(tenant)
    assert _open(store, tenant) == {session.multipart_id}
    assert _open(store, other_clinic["tenant"].id) == {theirs}
    assert (report.open_uploads, report.aborted_uploads) == (3, 2)
    assert sorted(report.samples["aborted"]) == sorted([untracked_key, ended_key])
    # Sweeping again finds nothing more to abort.
    with _later(store):
        assert sweeper.sweep_clinic(tenant).aborted_uploads == 0


def test_on_the_folder_a_young_untracked_upload_is_kept_and_an_abandoned_folder_goes(app, clinic, local_now):
    tenant = clinic["tenant"].id
    young = local_now.create_multipart_upload(
        make_key(tenant, clinic["record"].id, "young.pdf"), "application/pdf"
    )
    assert sweeper.sweep_clinic(tenant).aborted_uploads == 0
    assert (local_now.root / ".uploads" / young).is_dir()
    with _later(local_now):
        assert sweeper.sweep_clinic(tenant).aborted_uploads == 1
    assert not (local_now.root / ".uploads" / young).exists()


def test_orphans_and_missing_objects_are_reported_by_area_and_nothing_is_deleted(app, clinic, store):
    app.config["STORAGE_SWEEP_GRACE_HOURS"] = 0  # every object is old enough to judge
    tenant = clinic["tenant"].id
    kept = stored_file(tenant_id=tenant, patient_id=clinic["patient"].id, record_id=clinic["record"].id)
    lost = stored_file(
        tenant_id=tenant, patient_id=clinic["patient"].id, record_id=clinic["record"].id, name="lost.pdf"
    )
    store.delete(lost.storage_key)  # named by its row, gone from the store
    kept.preview_key = f"{tenant}/previews/{kept.id}-thumb"  # a preview the row names, never stored
    db.session.commit()
    orphan = _put(store, make_key(tenant, clinic["record"].id, "left-behind.pdf"), b"o" * 300)
    orphan_preview = _put(store, f"{tenant}/previews/999-thumb")
    # Areas the database does not index are counted, never judged.
    _put(store, f"{tenant}/audit-checkpoints/20260101T000000000000Z.json")
    _put(store, f"{tenant}/clinic-exports/abc.zip")
    _put(store, f"{tenant}/somewhere-else/file.bin")
    # Named by other rows: an upload in progress, an audit archive and its manifest, a zip job's result.
    upload = _tracked_upload(clinic)
    _put(store, upload.storage_key)
    archive_key = _put(store, f"{tenant}/audit-archive/2025-01.jsonl.gz")
    _put(store, f"{tenant}/audit-archive/manifest.json")
    db.session.add(
        AuditArchive(
            tenant_id=tenant, month="2025-01", starts_at=datetime(2025, 1, 1), ends_at=datetime(2025, 2, 1),
            key=archive_key, sha256="0" * 64, size=10, events=1,
        )
    )  # fmt: skip
    zip_key = _put(store, make_key(tenant, clinic["record"].id, "record-1-files.zip"))
    db.session.add(
        Job(id="z" * 36, tenant_id=tenant, kind="files.zip", label="Zip", args=[], status=FINISHED,
            result={"key": zip_key, "name": "record-1-files.zip"})
    )  # fmt: skip
    db.session.commit()
    before = _keys(store, tenant)

    report = sweeper.sweep_clinic(tenant)

    assert _keys(store, tenant) == before  # nothing deleted
    assert (report.orphans, report.orphan_bytes, report.missing) == (2, 310, 2)
    assert sorted(key for key, _size in report.samples["orphans"]) == sorted([orphan, orphan_preview])
    assert sorted(report.samples["missing"]) == sorted(
        [[lost.storage_key, "version"], [kept.preview_key, "preview"]]
    )
    assert report.objects == len(before)
    assert report.areas["medical-records"]["judged"] is True
    assert report.areas["audit-checkpoints"] == {"objects": 1, "bytes": 10, "judged": False}
    assert report.areas["clinic-exports"]["judged"] is False
    assert report.areas["somewhere-else"]["judged"] is False
    assert report.new_findings


def test_objects_younger_than_the_grace_are_not_judged(app, clinic, local_now):
    tenant = clinic["tenant"].id
    _put(local_now, make_key(tenant, clinic["record"].id, "just-uploaded.pdf"))
    report = sweeper.sweep_clinic(tenant)
    assert (report.orphans, report.too_new) == (0, 1)


def _notices(user) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.tenant_id == user.tenant_id, Notification.user_id == user.id
            )
        )
    )


def test_admins_are_told_once_per_new_finding_and_read_the_report(app, clinic, other_clinic, local_now):
    app.config["STORAGE_SWEEP_GRACE_HOURS"] = 0
    tenant = clinic["tenant"].id
    first = _put(local_now, make_key(tenant, clinic["record"].id, "orphan-1.pdf"))
    report = sweeper.sweep_clinic(tenant)
    [notice] = _notices(clinic["admin"])
    assert notice.kind == "storage_sweep" and notice.link == f"/admin/storage/sweeps/{report.id}"
    assert "1 object no record names" in notice.text and "Nothing was deleted" in notice.text
    assert _notices(clinic["doctor"]) == []  # admins only
    # The same finding again: no second notice.
    assert not sweeper.sweep_clinic(tenant).new_findings
    assert len(_notices(clinic["admin"])) == 1
    # A new orphan: a notice again.
    second = _put(local_now, make_key(tenant, clinic["record"].id, "orphan-2.pdf"))
    assert sweeper.sweep_clinic(tenant).new_findings
    assert len(_notices(clinic["admin"])) == 2
    # One resolved, nothing new: no notice.
    local_now.delete(second)
    assert not sweeper.sweep_clinic(tenant).new_findings
    assert len(_notices(clinic["admin"])) == 2
    # The page.
    admin = signed_in(app, clinic["admin"])
    page = admin.get("/admin/storage/sweeps")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert first in text and "medical-records/" in text and "Nothing was deleted" in text
    detail = admin.get(f"/admin/storage/sweeps/{report.id}")
    assert detail.status_code == 200 and first in detail.get_data(as_text=True)
    # Another clinic's report is not found; a doctor may not see reports at all.
    assert signed_in(app, other_clinic["admin"]).get(f"/admin/storage/sweeps/{report.id}").status_code == 404
    assert signed_in(app, clinic["doctor"]).get("/admin/storage/sweeps").status_code == 403


def test_the_cli_and_the_daily_job(app, clinic, other_clinic, local_now):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["storage", "sweep", "--clinic", str(clinic["tenant"].id)])
    assert result.exit_code == 0, result.output
    assert f"clinic {clinic['tenant'].id}: 0 objects, 0 of 0 open uploads aborted, 0 orphans, 0 missing" in (
        result.output
    )
    everyone = runner.invoke(args=["storage", "sweep"])
    assert everyone.exit_code == 0 and everyone.output.count("clinic ") == 2
    interval, target = PERIODIC["storage.sweep"]
    assert interval.days == 1 and target.endswith(":sweep_all")
    assert sweeper.sweep_all() == "2 storage sweeps queued"
    job = db.session.get(Job, enqueue("storage.sweep", tenant_id=clinic["tenant"].id, label="Storage sweep"))
    assert job.status == FINISHED and job.result["aborted"] == 0
    runs = db.session.scalars(select(StorageSweep).where(StorageSweep.tenant_id == clinic["tenant"].id)).all()
    assert len(runs) == 4  # the CLI for the clinic, the CLI for all, the periodic run's job, this job
    assert all(run.finished_at and run.finished_at <= utcnow() for run in runs)
