"""The audit archive: months past the hot window leave the table for checksummed files, the chain still
verifies across the boundary, the viewer and the CSV export still find archived events, and files past
retention are deleted with the deletion recorded."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
from datetime import datetime

import pytest
import time_machine
from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from healthcrm.audit import archive as archiving
from healthcrm.audit.checkpoints import signing_key, verify_checkpoints, write_checkpoint
from healthcrm.audit.models import ArchivedEventCopy, AuditArchive, AuditEvent
from healthcrm.audit.services import Actor, record_event, verify_chain
from healthcrm.extensions import db
from healthcrm.files.storage import get_storage
from healthcrm.jobs.models import Job
from tests.concurrency import parallel
from tests.factories import login, make_tenant, make_user

# Dates long before any real "now": the database's own clock (the 90-day rule) is not time-travelled.
JAN = datetime(2023, 1, 10, 15, 0)
FEB = datetime(2023, 2, 10, 15, 0)
MAR = datetime(2023, 3, 10, 15, 0)
ARCHIVE_DAY = datetime(2024, 3, 5, 12, 0)  # 13 hot months back from March 2024: February 2023


@pytest.fixture(autouse=True)
def _forget_archives(app):
    """Tests may share one storage folder (with a real worker): leave no archive for the next clinic."""
    yield
    storage = get_storage(current_app)
    for key in storage.list_keys(""):
        if "/audit-archive/" in key or "/audit-checkpoints/" in key:
            storage.delete(key)


def _history(tenant_id: int) -> dict[str, list[int]]:
    """Events in three months of 2023 (five in January, three in February, two in March), in time order."""
    ids: dict[str, list[int]] = {}
    for label, moment, count in (("jan", JAN, 5), ("feb", FEB, 3), ("mar", MAR, 2)):
        ids[label] = [
            record_event(Actor(tenant_id=tenant_id, role="doctor"), "record.view", patient_id=7,
                         occurred_at=moment.replace(minute=i)).id
            for i in range(count)
        ]  # fmt: skip
    db.session.commit()
    return ids


def _table_ids(tenant_id: int) -> set[int]:
    return set(db.session.scalars(select(AuditEvent.id).where(AuditEvent.tenant_id == tenant_id)))


def test_months_past_the_hot_window_move_to_a_checked_file_and_the_chain_still_verifies(app):
    clinic = make_tenant()
    ids = _history(clinic.id)
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        write_checkpoint(clinic.id)  # names the newest event, in the table
        archived = archiving.archive_due(clinic.id)

    assert [a.month for a in archived] == ["2023-01"]  # February is the oldest hot month
    january = archived[0]
    assert (january.events, january.first_event_id, january.last_event_id) == (
        5,
        ids["jan"][0],
        ids["jan"][-1],
    )
    assert not _table_ids(clinic.id) & set(ids["jan"]) and set(ids["feb"] + ids["mar"]) <= _table_ids(
        clinic.id
    )

    storage = get_storage(current_app)
    with storage.open_stream(january.key) as stream:
        lines = gzip.decompress(stream.read()).splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids["jan"]
    # The manifest beside the files, signed with the checkpoint key.
    with storage.open_stream(f"{clinic.id}/audit-archive/manifest.json") as stream:
        stored = json.loads(stream.read())
    document = stored["manifest"]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    signing_key().public_key().verify(base64.b64decode(stored["signature"]), canonical)
    assert document["archives"][0] | {} == {**document["archives"][0], "month": "2023-01", "events": 5}
    assert document["archives"][0]["sha256"] == january.sha256

    moved = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tenant_id == clinic.id, AuditEvent.action == "audit.archived")
    ).one()
    assert moved.resource_id == "2023-01" and moved.changed_fields == '["events_5"]'
    report = verify_chain(clinic.id, all_chains=False)
    assert report.intact and report.chains[clinic.id] == 11  # 10 + the archiving itself
    assert verify_chain().intact
    assert verify_checkpoints(clinic.id).intact

    with time_machine.travel(ARCHIVE_DAY, tick=False):
        assert archiving.archive_due(clinic.id) == []  # run twice: nothing more


def test_an_archived_event_named_by_a_checkpoint_is_found_in_its_file(app):
    clinic = make_tenant()
    _history(clinic.id)
    with time_machine.travel(datetime(2023, 1, 20), tick=False):
        write_checkpoint(clinic.id)  # names a January event: then the newest
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        archiving.archive_due(clinic.id)
    assert verify_checkpoints(clinic.id).intact


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_a_changed_or_missing_archive_file_breaks_the_chain_naming_the_month(app, damage):
    clinic = make_tenant()
    ids = _history(clinic.id)
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        (january,) = archiving.archive_due(clinic.id)
    storage = get_storage(current_app)
    if damage == "missing":
        storage.delete(january.key)
    else:
        with storage.open_stream(january.key) as stream:
            lines = gzip.decompress(stream.read()).splitlines()
        forged = json.loads(lines[2]) | {"actor_role": "admin"}
        lines[2] = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
        packed = gzip.compress(b"\n".join(lines) + b"\n")
        storage.put_stream(january.key, io.BytesIO(packed), "application/gzip")

    report = verify_chain(clinic.id, all_chains=False)
    assert not report.intact
    assert "2023-01" in report.reason and report.broken_event_id in ids["jan"]
    assert ("missing" if damage == "missing" else "altered") in report.reason


def test_recent_rows_cannot_be_deleted_whatever_audit_archives_says(app):
    """An attacker who writes an archive row over this month still cannot delete its audit rows."""
    clinic = make_tenant()
    record_event(Actor(tenant_id=clinic.id), "test.event")
    db.session.commit()
    db.session.execute(
        text(
            "INSERT INTO audit_archives (tenant_id, month, starts_at, ends_at, key, sha256, size, events, "
            "archived_at) VALUES (:t, '2099-01', '2000-01-01', '2100-01-01', 'k', 's', 0, 0, '2000-01-01')"
        ),
        {"t": clinic.id},
    )
    with pytest.raises(DBAPIError):
        db.session.execute(text("DELETE FROM audit_log WHERE tenant_id = :t"), {"t": clinic.id})
    db.session.rollback()
    assert len(_table_ids(clinic.id)) == 1


def test_an_archived_month_past_retention_is_deleted_and_recorded_and_the_chain_starts_after_it(app):
    clinic = make_tenant()
    _history(clinic.id)
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        (january,) = archiving.archive_due(clinic.id)
    storage = get_storage(current_app)
    with time_machine.travel(datetime(2029, 12, 1), tick=False):  # 7 years after January 2023: not yet
        assert archiving.delete_past_retention(clinic.id) == 0
    with time_machine.travel(datetime(2030, 3, 1), tick=False):
        assert archiving.delete_past_retention(clinic.id) == 1
        assert archiving.delete_past_retention(clinic.id) == 0

    row = db.session.get(AuditArchive, january.id)
    assert row.deleted_at is not None and storage.head(january.key) is None
    recorded = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.tenant_id == clinic.id, AuditEvent.action == "audit.archive_deleted"
        )
    ).one()
    assert recorded.resource_id == "2023-01"
    assert verify_chain(clinic.id, all_chains=False).intact


def test_two_workers_archiving_the_same_month_archive_it_once(app):
    clinic = make_tenant()
    ids = _history(clinic.id)
    tenant_id = clinic.id

    def work(_):
        with time_machine.travel(ARCHIVE_DAY, tick=False):
            return archiving.archive_month(tenant_id, datetime(2023, 1, 1).date())

    outcomes = parallel(2, app, work)
    db.session.rollback()
    made = [o for o in outcomes if isinstance(o, AuditArchive)]
    assert len(made) == 1, outcomes
    assert db.session.scalar(select(func.count()).select_from(AuditArchive)) == 1
    assert not _table_ids(tenant_id) & set(ids["jan"])
    assert verify_chain(tenant_id, all_chains=False).intact


def test_the_viewer_and_the_csv_export_search_archived_months_once_loaded(app, client, inline_jobs):
    clinic = make_tenant()
    admin = make_user(clinic, "admin")
    ids = _history(clinic.id)
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        archiving.archive_due(clinic.id)
    login(client, admin.email)

    page = client.get("/audit?date_to=2023-01-31").get_data(as_text=True)
    assert "Search 1 archived month too" in page and f"Event {ids['jan'][0]}" not in page
    loaded = client.post(
        "/audit/archives/load", data={"date_to": "2023-01-31"}, headers={"HX-Request": "true"}
    )
    assert loaded.status_code in (200, 286) and "5 archived events loaded" in loaded.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ArchivedEventCopy)) == 5

    page = client.get("/audit?date_to=2023-01-31").get_data(as_text=True)
    assert all(f"Event {i}" in page for i in ids["jan"]) and "Archived" in page
    assert "archived month too" not in page  # nothing left to load
    detail = client.get(f"/audit/{ids['jan'][0]}").get_data(as_text=True)
    assert "The archive of 2023-01" in detail
    # The whole log, newest first: the table's events, then the archived ones.
    everything = client.get("/audit").get_data(as_text=True)
    assert everything.index(f"Event {ids['feb'][0]}") < everything.index(f"Event {ids['jan'][-1]}")

    # The export loads what it needs itself (copies dropped first, as a day later).
    db.session.execute(ArchivedEventCopy.__table__.delete())
    db.session.commit()
    client.post("/audit/export", data={"patient": "7"})
    job = db.session.scalars(select(Job).where(Job.kind == "audit.export_csv")).one()
    with get_storage(current_app).open_stream(job.result["key"]) as stream:
        rows = list(csv.DictReader(io.StringIO(stream.read().decode())))
    assert [int(r["event id"]) for r in rows] == ids["jan"] + ids["feb"] + ids["mar"]
    mine = select(AuditEvent.action).where(
        AuditEvent.tenant_id == clinic.id, AuditEvent.action.startswith("audit.")
    )
    actions = list(db.session.scalars(mine.order_by(AuditEvent.id)))
    assert actions == ["audit.archived", "audit.archive_loaded", "audit.export"]


def test_another_clinics_archive_is_not_loaded_nor_shown(app, client, inline_jobs):
    clinic, other = make_tenant(), make_tenant("Other Clinic")
    admin = make_user(clinic, "admin")
    theirs = _history(other.id)
    with time_machine.travel(ARCHIVE_DAY, tick=False):
        archiving.archive_due(other.id)
    login(client, admin.email)
    assert "archived month" not in client.get("/audit").get_data(as_text=True)
    assert client.post("/audit/archives/load", data={}).status_code == 404
    assert client.get(f"/audit/{theirs['jan'][0]}").status_code == 404
