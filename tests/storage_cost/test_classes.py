"""Each file's storage class: recorded at upload (INTELLIGENT_TIERING on S3, STANDARD on the folder), and
refreshed by the daily `storage.classes` job from a listing of the clinic's objects, in batches, once."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from healthcrm.audit.services import Actor
from healthcrm.extensions import db
from healthcrm.files import patient_files
from healthcrm.files.models import AttachmentVersion
from healthcrm.files.storage import ListedObject, S3Storage
from healthcrm.jobs.models import FINISHED, Job
from healthcrm.jobs.periodic import PERIODIC
from healthcrm.jobs.queue import enqueue
from healthcrm.storage_cost import classes, restore_tasks
from healthcrm.storage_cost.inventory import KeyOrderError, merge
from healthcrm.storage_cost.restore_models import CLOSED, READY, VIA_STAFF, FileRestore
from tests.storage_cost.restore_fixtures import (
    PDF,
    clinic,
    local_now,
    moto_url,
    other_clinic,
    s3,
    store,
    stored_file,
)

__all__ = ["clinic", "local_now", "moto_url", "other_clinic", "s3", "store"]


def _move(storage, key: str, storage_class: str) -> None:
    """What a lifecycle rule does behind the app's back."""
    if isinstance(storage, S3Storage):
        storage.client.copy_object(
            Bucket=storage.bucket,
            Key=key,
            CopySource={"Bucket": storage.bucket, "Key": key},
            StorageClass=storage_class,
            MetadataDirective="COPY",
        )
    else:
        storage.set_storage_class(key, storage_class)


def _classes(tenant_id: int) -> dict[str, str]:
    rows = db.session.execute(
        select(AttachmentVersion.original_name, AttachmentVersion.storage_class).where(
            AttachmentVersion.tenant_id == tenant_id
        )
    )
    return dict(rows.all())


def test_uploads_record_the_class_the_store_gave(app, clinic, store):
    staff = Actor(tenant_id=clinic["tenant"].id, user_id=clinic["doctor"].id, role="doctor")
    document = patient_files.store_patient_file(
        staff, clinic["patient"].id, "letter.pdf", io.BytesIO(PDF), source=patient_files.STAFF
    )
    expected = "INTELLIGENT_TIERING" if isinstance(store, S3Storage) else "STANDARD"
    assert document.current_version.storage_class == expected
    assert store.head(document.current_version.storage_key).storage_class == expected


def test_the_job_corrects_the_classes_that_changed_and_only_those(
    app, clinic, other_clinic, store, monkeypatch
):
    monkeypatch.setattr(classes, "UPDATE_BATCH", 2)  # several batches out of a few files
    tenant = clinic["tenant"].id

    def put(name: str, storage_class: str, owner=clinic):
        return stored_file(
            tenant_id=owner["tenant"].id,
            patient_id=owner["patient"].id,
            record_id=owner["record"].id,
            name=name,
            storage_class=storage_class,
        )

    moved = [put(f"old-{n}.pdf", "STANDARD") for n in range(5)]
    put("recent.pdf", "STANDARD")
    theirs = put("theirs.pdf", "STANDARD", other_clinic)
    for version in moved[:3]:
        _move(store, version.storage_key, "GLACIER")
    _move(store, moved[3].storage_key, "DEEP_ARCHIVE")
    _move(store, moved[4].storage_key, "STANDARD_IA")
    _move(store, theirs.storage_key, "GLACIER")  # another clinic's: its own job's business

    job_id = enqueue(restore_tasks.CLASSES_JOB, tenant_id=tenant, label="Storage classes")
    job = db.session.get(Job, job_id)
    assert job.status == FINISHED
    assert job.result == {"objects": 6, "changed": 5, "restores_closed": 0}
    db.session.expire_all()
    assert _classes(tenant) == {
        "old-0.pdf": "GLACIER",
        "old-1.pdf": "GLACIER",
        "old-2.pdf": "GLACIER",
        "old-3.pdf": "DEEP_ARCHIVE",
        "old-4.pdf": "STANDARD_IA",
        "recent.pdf": "STANDARD",
    }
    assert _classes(other_clinic["tenant"].id) == {"theirs.pdf": "STANDARD"}
    # Again: nothing more changes.
    again = classes.refresh_classes(tenant)
    assert (again.objects, again.versions, again.changed) == (6, 6, 0)


def test_a_file_that_left_the_archive_needs_no_restore(app, clinic, local_now):
    version = stored_file(
        tenant_id=clinic["tenant"].id, patient_id=clinic["patient"].id, record_id=clinic["record"].id
    )
    db.session.add(
        FileRestore(
            tenant_id=version.tenant_id, version_id=version.id, attachment_id=version.attachment_id,
            patient_id=clinic["patient"].id, tier="Standard", days=7, status=READY, via=VIA_STAFF,
            expected_ready_at=version.created_at,
        )
    )  # fmt: skip
    db.session.commit()
    local_now.request_restore(version.storage_key, days=7, tier="Standard")
    local_now.set_storage_class(version.storage_key, "STANDARD")  # copied out of the archive
    found = classes.refresh_classes(clinic["tenant"].id)
    assert (found.changed, found.restores_closed) == (1, 1)
    restore = db.session.scalar(select(FileRestore).where(FileRestore.tenant_id == version.tenant_id))
    assert restore.status == CLOSED


def test_the_refresh_is_a_daily_periodic_task_that_queues_a_job_per_clinic(
    app, clinic, other_clinic, local_now
):
    interval, target = PERIODIC["storage.classes"]
    assert interval.days == 1 and target.endswith(":refresh_all_classes")
    assert restore_tasks.refresh_all_classes() == "2 storage class refreshes queued"
    jobs = db.session.scalars(select(Job).where(Job.kind == "storage.classes")).all()
    assert sorted(job.tenant_id for job in jobs) == sorted([clinic["tenant"].id, other_clinic["tenant"].id])
    assert all(job.status == FINISHED for job in jobs)


def _listed(*keys: str) -> list[ListedObject]:
    from datetime import UTC, datetime

    return [ListedObject(key, 1, "STANDARD", datetime(2026, 1, 1, tzinfo=UTC)) for key in keys]


def test_the_merge_pairs_each_key_once_and_refuses_streams_out_of_order():
    merged = list(
        merge(_listed("1/a", "1/c", "1/d"), [("1/b", "x"), ("1/c", "y"), ("1/c", "z"), ("1/e", "w")])
    )
    assert [(key, obj is not None, named) for key, obj, named in merged] == [
        ("1/a", True, []),
        ("1/b", False, ["x"]),
        ("1/c", True, ["y", "z"]),
        ("1/d", True, []),
        ("1/e", False, ["w"]),
    ]
    with pytest.raises(KeyOrderError):
        list(merge(_listed("1/a"), [("1/c", "x"), ("1/b", "y")]))
    with pytest.raises(KeyOrderError):
        list(merge(_listed("1/b", "1/a"), []))
