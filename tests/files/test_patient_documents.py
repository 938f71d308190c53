"""Patient documents (healthcrm/files/patient_files.py): files on the patient with no record, stored by the
patient or by staff through the same checks, scan, compression, versions and quota as record attachments;
audited; the patient sees their own and what staff made visible; the portal event opens one task."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from healthcrm.audit.models import AuditEvent
from healthcrm.audit.services import Actor
from healthcrm.care.models import Task
from healthcrm.clock import utcnow
from healthcrm.errors import NotAllowed, NotFound
from healthcrm.extensions import db
from healthcrm.files import patient_files
from healthcrm.files.document_events import CLINICAL_POOL_ROLES, document_items, open_document_task
from healthcrm.files.models import SCAN_NOT_SCANNED, SCAN_PENDING, Attachment, AttachmentVersion
from healthcrm.files.services import read_version
from healthcrm.files.storage import get_storage
from healthcrm.files.uploads import UploadRejected
from healthcrm.portal import events
from healthcrm.portal.models import PortalEvent
from healthcrm.tenant_scope import all_tenants
from tests.concurrency import parallel
from tests.factories import make_patient, make_portal_user, make_tenant, make_user
from tests.files import samples


def _actor(user) -> Actor:
    return Actor(tenant_id=user.tenant_id, user_id=user.id, role=user.role)


@pytest.fixture
def clinic(app):
    tenant = make_tenant()
    coach = make_user(tenant, "coach", full_name="Cora Coach")
    patient = make_patient(tenant, first_name="Liv", last_name="Hepburn", assigned_coach_id=coach.id)
    other = make_patient(tenant, first_name="Otto", last_name="Other")
    return {
        "tenant": tenant,
        "coach": coach,
        "nurse": make_user(tenant, "nurse", full_name="Nina Nurse"),
        "front_desk": make_user(tenant, "front_desk"),
        "patient": patient,
        "portal_user": make_portal_user(patient),
        "other": other,
        "other_user": make_portal_user(other),
    }


def _store(user, patient, name: str, data: bytes, source: str | None = None) -> Attachment:
    source = source or (patient_files.PORTAL if user.role == "patient" else patient_files.STAFF)
    return patient_files.store_patient_file(_actor(user), patient.id, name, io.BytesIO(data), source=source)


def _count(model, *where) -> int:
    with all_tenants("test"):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _stored_files(app) -> set:
    """The objects in the store (the folder outlives a test on PostgreSQL: compare before and after)."""
    root = get_storage(app).root
    return {p for p in root.rglob("*") if p.is_file() and "medical-records" in p.parts}


def test_a_patient_stores_a_document_in_their_own_file(app, clinic):
    document = _store(clinic["portal_user"], clinic["patient"], "Insurance card.pdf", samples.pdf())
    assert document.record_id is None and document.patient_id == clinic["patient"].id
    assert document.source == patient_files.PORTAL and document.uploaded_by_patient
    assert document.visible_to_patient is True
    version = document.current_version
    assert version.number == 1 and version.kind == "pdf" and version.scan_status == SCAN_NOT_SCANNED
    assert b"".join(read_version(version)) == samples.pdf()
    assert f"/patient-{clinic['patient'].id}/" in version.storage_key
    audit = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "attachment.upload", AuditEvent.resource_id == str(document.id)
        )
    )
    assert audit.patient_id == clinic["patient"].id and audit.actor_user_id == clinic["portal_user"].id
    event = db.session.scalar(select(PortalEvent).where(PortalEvent.tenant_id == clinic["tenant"].id))
    assert event.kind == "document.uploaded" and event.subject_id == document.id


def test_text_is_stored_compressed_and_read_back_whole(app, clinic):
    data = b"Blood pressure log, morning and evening\n" * 400
    document = _store(clinic["portal_user"], clinic["patient"], "bp.txt", data)
    version = document.current_version
    assert version.compression == "gzip" and version.stored_size < version.size == len(data)
    assert b"".join(read_version(version)) == data


def test_staff_documents_stay_hidden_until_marked_visible(app, clinic):
    nurse, portal_user, patient = clinic["nurse"], clinic["portal_user"], clinic["patient"]
    letter = _store(nurse, patient, "Referral letter.pdf", samples.pdf())
    assert letter.source == patient_files.STAFF and letter.visible_to_patient is False
    assert not _count(PortalEvent)  # only the patient's own uploads open a task
    assert [d.id for d in patient_files.patient_documents(_actor(nurse), patient.id)] == [letter.id]
    assert patient_files.patient_documents(_actor(portal_user), patient.id) == []
    with pytest.raises(NotFound):
        patient_files.get_patient_document(_actor(portal_user), patient.id, letter.id)

    patient_files.set_visible_to_patient(_actor(nurse), patient.id, letter.id, True)
    assert [d.id for d in patient_files.patient_documents(_actor(portal_user), patient.id)] == [letter.id]
    assert _count(AuditEvent, AuditEvent.action == "attachment.show_to_patient") == 1
    patient_files.set_visible_to_patient(_actor(nurse), patient.id, letter.id, False)
    assert _count(AuditEvent, AuditEvent.action == "attachment.hide_from_patient") == 1
    with pytest.raises(NotAllowed):
        patient_files.set_visible_to_patient(_actor(clinic["coach"]), patient.id, letter.id, True)


def test_the_same_name_again_is_a_new_version(app, clinic):
    first = _store(clinic["portal_user"], clinic["patient"], "scan.png", samples.png())
    second = _store(clinic["portal_user"], clinic["patient"], "SCAN.png", samples.png((20, 20)))
    assert second.id == first.id
    assert sorted(v.number for v in second.versions) == [1, 2]
    assert _count(Attachment) == 1


def test_a_patient_upload_never_becomes_a_version_of_a_staff_document(app, clinic):
    staff = _store(clinic["nurse"], clinic["patient"], "letter.pdf", samples.pdf())
    mine = _store(clinic["portal_user"], clinic["patient"], "letter.pdf", samples.pdf())
    assert mine.id != staff.id and mine.filename == "letter (2).pdf"
    assert [v.number for v in staff.versions] == [1]


def test_record_attachments_and_patient_documents_are_apart(app, clinic):
    """A patient document is not on any record: the record lists and share contents never see it."""
    _store(clinic["portal_user"], clinic["patient"], "mine.pdf", samples.pdf())
    assert _count(Attachment, Attachment.record_id.is_not(None)) == 0


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("page.pdf", samples.html(), "web page"),
        ("tool.pdf", samples.exe(), "can be attached"),
        ("empty.pdf", b"", "empty"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_message_and_nothing_stored(app, clinic, name, data, words):
    before = _stored_files(app)
    with pytest.raises(patient_files.DocumentRejected) as refused:
        _store(clinic["portal_user"], clinic["patient"], name, data)
    assert refused.value.reason.startswith(f"{name}: ") and words in refused.value.reason
    assert isinstance(refused.value, UploadRejected) and refused.value.status == 422
    assert _count(Attachment) == 0 and _count(AttachmentVersion) == 0 and _count(PortalEvent) == 0
    assert _count(AuditEvent, AuditEvent.action == "attachment.upload") == 0
    assert _stored_files(app) == before


def test_a_file_over_the_limit_is_refused(app, clinic):
    app.config["ATTACHMENT_MAX_BYTES"] = 1000
    before = _stored_files(app)
    with pytest.raises(patient_files.DocumentTooLarge) as refused:
        _store(clinic["portal_user"], clinic["patient"], "big.txt", b"a" * 1001)
    assert "limit" in refused.value.reason and refused.value.status == 413
    assert _count(Attachment) == 0 and _stored_files(app) == before


def test_the_clinic_quota_counts_patient_documents(app, clinic):
    tenant = clinic["tenant"]
    _store(clinic["portal_user"], clinic["patient"], "one.pdf", samples.pdf())
    tenant.storage_quota_bytes = len(samples.pdf()) + 10
    db.session.commit()
    with pytest.raises(patient_files.DocumentRejected) as patient_refused:
        _store(clinic["portal_user"], clinic["patient"], "two.pdf", samples.pdf())
    assert "call the clinic" in patient_refused.value.reason
    with pytest.raises(patient_files.DocumentRejected) as staff_refused:
        _store(clinic["nurse"], clinic["patient"], "two.pdf", samples.pdf())
    assert "storage is full" in staff_refused.value.reason
    assert _count(Attachment) == 1


def test_a_patient_cannot_store_into_or_read_another_patients_file(app, clinic):
    with pytest.raises(NotFound):
        _store(clinic["portal_user"], clinic["other"], "x.pdf", samples.pdf())
    theirs = _store(clinic["other_user"], clinic["other"], "theirs.pdf", samples.pdf())
    with pytest.raises(NotFound):
        patient_files.get_patient_document(_actor(clinic["portal_user"]), clinic["patient"].id, theirs.id)
    with pytest.raises(NotFound):
        patient_files.patient_documents(_actor(clinic["portal_user"]), clinic["other"].id)
    with pytest.raises(ValueError, match="source"):
        _store(clinic["portal_user"], clinic["patient"], "x.pdf", samples.pdf(), source=patient_files.STAFF)
    assert _count(Attachment) == 1


def test_another_clinic_and_the_front_desk_reach_nothing(app, clinic):
    elsewhere = make_user(make_tenant(name="Elsewhere"), "doctor")
    with pytest.raises(NotFound):
        _store(elsewhere, clinic["patient"], "x.pdf", samples.pdf())
    with pytest.raises(NotAllowed):
        _store(clinic["front_desk"], clinic["patient"], "x.pdf", samples.pdf())
    with pytest.raises(NotAllowed):
        patient_files.patient_documents(_actor(clinic["front_desk"]), clinic["patient"].id)
    assert _count(Attachment) == 0


def test_a_pending_scan_is_recorded_and_the_scan_job_queued(app, clinic, inline_jobs, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "healthcrm.files.uploads.enqueue", lambda name, *args, **kw: queued.append((name, args))
    )
    app.config["CLAMD_HOST"] = "127.0.0.1"
    document = _store(clinic["portal_user"], clinic["patient"], "scan.pdf", samples.pdf())
    assert document.current_version.scan_status == SCAN_PENDING
    assert ("files.scan", (document.current_version.id,)) in queued


# --- the portal event and the timeline ------------------------------------------------------------------


def _event_of(document: Attachment) -> PortalEvent:
    return db.session.scalar(
        select(PortalEvent).where(
            PortalEvent.tenant_id == document.tenant_id, PortalEvent.subject_id == document.id
        )
    )


def test_the_upload_opens_one_task_for_the_coach_however_often_handled(app, clinic):
    document = _store(clinic["portal_user"], clinic["patient"], "scan.pdf", samples.pdf())
    event = _event_of(document)
    events.handle_event(event.id, event.tenant_id)  # queued jobs may have handled it already
    assert events.handle_event(event.id, event.tenant_id) is False
    open_document_task(event)  # a handler run again adds nothing either
    db.session.commit()
    tasks = list(db.session.scalars(select(Task).where(Task.tenant_id == clinic["tenant"].id)))
    assert len(tasks) == 1
    assert tasks[0].assignee_id == clinic["coach"].id and tasks[0].kind == "document"
    assert tasks[0].patient_id == clinic["patient"].id and "#documents" in tasks[0].link


def test_without_a_coach_the_task_goes_to_the_clinical_pool(app, clinic):
    other = _store(clinic["other_user"], clinic["other"], "scan.pdf", samples.pdf())
    event = _event_of(other)
    events.handle_event(event.id, event.tenant_id)
    task = db.session.scalar(select(Task).where(Task.tenant_id == clinic["tenant"].id))
    assert task.assignee_id is None and task.pool_roles == CLINICAL_POOL_ROLES


def test_the_timeline_source_pages_by_time_and_id(app, clinic):
    patient, tenant_id = clinic["patient"], clinic["tenant"].id
    names = [f"doc{n}.txt" for n in range(5)]
    for name in names:
        _store(clinic["portal_user"], patient, name, name.encode())
    hidden = _store(clinic["nurse"], patient, "hidden.pdf", samples.pdf())
    # Two at the same instant: the id breaks the tie.
    same = utcnow() - timedelta(days=1)
    for document in db.session.scalars(select(Attachment).where(Attachment.tenant_id == tenant_id)):
        if document.filename in ("doc1.txt", "doc2.txt"):
            document.created_at = same
    db.session.commit()
    with app.test_request_context():
        first = document_items(tenant_id, patient.id, None, 3)
        rest = document_items(tenant_id, patient.id, (first[-1].at, first[-1].key), 10)
    seen = [item.detail for item in first + rest]
    assert sorted(seen) == names and hidden.filename not in seen
    assert seen[-2:] == ["doc2.txt", "doc1.txt"]
    assert len({item.key for item in first + rest}) == 5
    assert all(item.kind == "document" and item.title == "You added a document" for item in first + rest)
    with app.test_request_context():
        assert document_items(tenant_id, clinic["other"].id, None, 10) == []


def test_two_uploads_of_one_name_at_once_make_one_document_with_two_versions(app, clinic):
    tenant_id, user_id, patient_id = clinic["tenant"].id, clinic["portal_user"].id, clinic["patient"].id

    def upload(i: int):
        actor = Actor(tenant_id=tenant_id, user_id=user_id, role="patient")
        data = samples.png((10 + i, 10))
        document = patient_files.store_patient_file(
            actor, patient_id, "photo.png", io.BytesIO(data), source=patient_files.PORTAL
        )
        return document.id

    outcomes = parallel(2, app, upload)
    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert outcomes[0] == outcomes[1]
    numbers = db.session.scalars(
        select(AttachmentVersion.number)
        .where(AttachmentVersion.tenant_id == tenant_id)
        .order_by(AttachmentVersion.number)
    )
    assert list(numbers) == [1, 2]
