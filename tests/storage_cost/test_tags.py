"""The `archive=allowed` tag: which versions carry it, removed at once when a hold is placed or a file is
opened, and the daily job that re-evaluates the rest (idempotent), on the local folder and moto's S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from healthcrm.extensions import db
from healthcrm.files import services as files
from healthcrm.jobs.periodic import PERIODIC
from healthcrm.jobs.queue import TASKS, enqueue
from healthcrm.records.models import Diagnosis, MedicalRecord
from healthcrm.retention.services import place_hold, release_hold
from healthcrm.storage_cost.lifecycle import save_settings
from healthcrm.storage_cost.models import ArchiveTag
from healthcrm.storage_cost.tags import retag_all_clinics, retag_clinic
from tests.concurrency import parallel
from tests.storage_cost.helpers import KB, add_record, add_version, make_clinic, opened

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
ALLOWED = {"archive": "allowed"}


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _tags(storage, version) -> dict:
    return storage.get_tags(version.storage_key)


def _rows(tenant_id: int) -> set[int]:
    return set(db.session.scalars(select(ArchiveTag.version_id).where(ArchiveTag.tenant_id == tenant_id)))


class CountingWrites:
    """Counts the storage's tag writes (set_tags) while still doing them."""

    def __init__(self, storage, monkeypatch):
        self.calls: list[str] = []
        original = storage.set_tags

        def set_tags(key, tags):
            self.calls.append(key)
            original(key, tags)

        monkeypatch.setattr(storage, "set_tags", set_tags)


def test_only_finalized_unheld_unopened_large_files_are_tagged(app, storage, at_now):
    clinic = make_clinic()
    final, draft = add_record(clinic), add_record(clinic, status="draft")
    held_patient = make_clinic_patient(clinic)
    held_record = add_record(clinic, patient=held_patient)
    versions = {
        "final": add_version(clinic, final),
        "draft": add_version(clinic, draft),
        "small": add_version(clinic, final, size=128 * KB - 1),
        "at_limit": add_version(clinic, final, size=128 * KB),
        "pending_scan": add_version(clinic, final, scan_status="pending"),
        "not_scanned": add_version(clinic, final, scan_status="not_scanned"),
        "opened_recently": add_version(clinic, final),
        "opened_long_ago": add_version(clinic, final),
        "patient_document": add_version(clinic, None),
        "held": add_version(clinic, held_record),
    }
    opened(versions["opened_recently"], clinic.doctor, (NOW - timedelta(days=29)).replace(tzinfo=None))
    opened(versions["opened_long_ago"], clinic.doctor, (NOW - timedelta(days=31)).replace(tzinfo=None))
    place_hold(clinic.actor(), held_patient.id, "Case 2027-14")

    counts = retag_clinic(clinic.id)

    allowed = {"final", "at_limit", "not_scanned", "opened_long_ago", "patient_document"}
    assert {name for name, v in versions.items() if _tags(storage, v) == ALLOWED} == allowed
    assert {name for name, v in versions.items() if _tags(storage, v) == {}} == set(versions) - allowed
    assert _rows(clinic.id) == {versions[name].id for name in allowed}
    assert counts == {"allowed": 5, "removed": 0, "written": 5, "unchanged": 5, "missing": 0}


def make_clinic_patient(clinic):
    from tests.factories import make_patient

    return make_patient(clinic.tenant)


def test_the_daily_job_is_idempotent_and_writes_only_what_differs(app, storage, at_now, monkeypatch):
    clinic, other = make_clinic(), make_clinic("Other")
    record = add_record(clinic)
    versions = [add_version(clinic, record) for _ in range(5)]
    add_version(other, add_record(other))
    writes = CountingWrites(storage, monkeypatch)

    first = retag_all_clinics()
    assert first == "2 clinics: 6 allowed, 0 missing, 0 removed, 0 unchanged, 6 written"
    assert len(writes.calls) == 6

    second = retag_all_clinics()
    assert second == "2 clinics: 0 allowed, 0 missing, 0 removed, 6 unchanged, 0 written"
    assert len(writes.calls) == 6  # nothing written the second time

    # In batches of 2: the same answer, one write for the one change.
    opened(versions[3], clinic.doctor, NOW.replace(tzinfo=None))  # removed at once, see below
    assert len(writes.calls) == 7
    assert retag_clinic(clinic.id, batch=2) == {
        "allowed": 0,
        "removed": 0,
        "written": 0,
        "unchanged": 5,
        "missing": 0,
    }
    assert _tags(storage, versions[3]) == {}


def test_a_hold_removes_the_tags_of_all_the_patients_files_at_once(app, storage, at_now):
    clinic = make_clinic()
    record, other_record = add_record(clinic), add_record(clinic, patient=make_clinic_patient(clinic))
    first = add_version(clinic, record)
    second = add_version(clinic, record, attachment=first.attachment)  # a second version of the same file
    document = add_version(clinic, None)  # a document of the same patient
    someone_else = add_version(clinic, other_record)
    retag_clinic(clinic.id)
    assert all(_tags(storage, v) == ALLOWED for v in (first, second, document, someone_else))

    place_hold(clinic.actor(), clinic.patient.id, "Request from counsel")

    # No job ran: the hold's commit removed them.
    assert [_tags(storage, v) for v in (first, second, document)] == [{}, {}, {}]
    assert _tags(storage, someone_else) == ALLOWED
    assert _rows(clinic.id) == {someone_else.id}
    # The job agrees while the hold lasts, and tags them again once it is released.
    assert retag_clinic(clinic.id)["written"] == 0
    release_hold(clinic.actor(), clinic.patient.id)
    assert retag_clinic(clinic.id)["allowed"] == 3
    assert _tags(storage, first) == ALLOWED


def test_opening_a_file_removes_its_tag_at_once(app, storage, at_now):
    clinic = make_clinic()
    record = add_record(clinic)
    version, untouched = add_version(clinic, record), add_version(clinic, record)
    retag_clinic(clinic.id)

    delivery = files.open_version(
        clinic.actor(clinic.doctor), version.attachment_id, version.id, inline=False
    )

    assert delivery.version.id == version.id
    assert _tags(storage, version) == {}
    assert _tags(storage, untouched) == ALLOWED
    assert _rows(clinic.id) == {untouched.id}
    # Still recently opened 30 days later; no longer on day 31.
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        assert retag_clinic(clinic.id)["allowed"] == 0
    with time_machine.travel(NOW + timedelta(days=31), tick=False):
        assert retag_clinic(clinic.id)["allowed"] == 1
    assert _tags(storage, version) == ALLOWED


def test_a_finalized_record_is_tagged_by_the_next_run(app, storage, at_now):
    from healthcrm.records.services import finalize_record

    clinic = make_clinic()
    draft = add_record(clinic, status="draft")
    version = add_version(clinic, draft)
    db.session.add(
        Diagnosis(tenant_id=clinic.id, record_id=draft.id, code="I10", name="Essential hypertension")
    )
    db.session.commit()
    assert retag_clinic(clinic.id)["allowed"] == 0
    finalize_record(clinic.actor(clinic.doctor), draft.id)
    assert db.session.get(MedicalRecord, draft.id).status == "finalized"
    assert _tags(storage, version) == {}  # allowed later, by the job
    assert retag_clinic(clinic.id)["allowed"] == 1
    assert _tags(storage, version) == ALLOWED


def test_other_tags_on_an_object_are_kept(app, storage, at_now):
    clinic = make_clinic()
    version = add_version(clinic, add_record(clinic))
    storage.set_tags(version.storage_key, {"owner": "radiology"})
    retag_clinic(clinic.id)
    assert _tags(storage, version) == {"owner": "radiology", **ALLOWED}
    opened(version, clinic.doctor, NOW.replace(tzinfo=None))
    assert _tags(storage, version) == {"owner": "radiology"}


def test_a_missing_object_is_counted_not_tagged(app, storage, at_now):
    clinic = make_clinic()
    add_version(clinic, add_record(clinic), store=False)
    assert retag_clinic(clinic.id) == {"allowed": 0, "removed": 0, "written": 0, "unchanged": 0, "missing": 1}
    assert _rows(clinic.id) == set()


def test_turning_archiving_off_removes_every_tag_through_the_queued_job(app, storage, at_now, inline_jobs):
    clinic = make_clinic()
    version = add_version(clinic, add_record(clinic))
    retag_clinic(clinic.id)
    assert _tags(storage, version) == ALLOWED
    save_settings(clinic.actor(), {"glacier_days": "90", "deep_archive_days": "180", "recent_days": "30"})
    assert _tags(storage, version) == {}  # the settings change queued storage.tags, which ran inline
    assert _rows(clinic.id) == set()


def test_the_job_is_registered_and_daily(app, storage, at_now, inline_jobs):
    assert "storage.tags" in TASKS
    assert PERIODIC["storage.tags"][0] == timedelta(days=1)
    clinic = make_clinic()
    version = add_version(clinic, add_record(clinic))
    enqueue("storage.tags", tenant_id=clinic.id)
    assert _tags(storage, version) == ALLOWED


def test_a_hold_placed_while_the_job_tags_still_ends_untagged(app, storage, at_now, monkeypatch):
    """The hold commits between the job's rows and its tag write: the job's second look removes it."""
    clinic = make_clinic()
    record = add_record(clinic)
    version = add_version(clinic, record)
    original = storage.set_tags
    placed = []

    def set_tags(key, tags):
        if tags == ALLOWED and not placed:
            # Another request, on its own connection, at this very moment.
            placed.append(
                parallel(1, app, lambda _: place_hold(clinic.actor(), clinic.patient.id, "Case"))[0]
            )
        original(key, tags)

    monkeypatch.setattr(storage, "set_tags", set_tags)
    counts = retag_clinic(clinic.id)
    assert not isinstance(placed[0], Exception), placed[0]
    assert _tags(storage, version) == {}
    assert _rows(clinic.id) == set()
    assert counts["allowed"] == 0
