"""Uploads two requests race on (real threads, SQLite and PostgreSQL): one "complete" sent twice at once,
and two files of one name completed at the same moment. Nothing is lost, nothing answers 500."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from healthcrm.extensions import db
from healthcrm.files import uploads
from healthcrm.files.models import Attachment, AttachmentVersion
from healthcrm.files.storage import get_storage
from tests.concurrency import parallel
from tests.files.test_uploads import _send, make_upload_clinic


@pytest.fixture
def clinic(app):
    return make_upload_clinic()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _plan(app, clinic, name: str, data: bytes):
    actor = clinic["actor"]
    plan = uploads.start_upload(
        actor, clinic["record"].id, name, len(data), "application/pdf", f"{name}|{len(data)}|{id(data)}"
    )
    return plan.session.public_id, _send(app, plan, data, actor)


def _versions(record_id: int) -> list[AttachmentVersion]:
    return list(
        db.session.scalars(
            select(AttachmentVersion)
            .join(Attachment, Attachment.id == AttachmentVersion.attachment_id)
            .where(Attachment.record_id == record_id)
        )
    )


def test_one_upload_completed_twice_at_once_keeps_one_version(app, clinic):
    public_id, parts = _plan(app, clinic, "referral.pdf", PDF)
    actor = clinic["actor"]

    def complete(_index: int):
        try:
            return uploads.complete_upload(actor, public_id, parts).id
        except uploads.UploadBusy as busy:
            return busy

    outcomes = parallel(4, app, complete)
    kept = {outcome for outcome in outcomes if isinstance(outcome, int)}
    assert len(kept) == 1, outcomes
    assert all(isinstance(o, int | uploads.UploadBusy) for o in outcomes), outcomes
    db.session.expire_all()
    [version] = _versions(clinic["record"].id)
    assert version.id in kept
    # The file the version names is there and whole (no "complete" deleted it under the other).
    assert get_storage(app).head(version.storage_key) is not None
    # A late retry of the same "complete" answers the same version.
    assert uploads.complete_upload(actor, public_id, parts).id == version.id


def test_two_files_of_one_name_completed_at_once_become_two_versions(app, clinic):
    first = _plan(app, clinic, "scan.pdf", PDF)
    second = _plan(app, clinic, "scan.pdf", PDF + b"% second\n")
    actor = clinic["actor"]

    def complete(index: int):
        public_id, parts = (first, second)[index]
        return uploads.complete_upload(actor, public_id, parts).number

    outcomes = parallel(2, app, complete)
    assert sorted(outcomes) == [1, 2], outcomes
    db.session.expire_all()
    versions = _versions(clinic["record"].id)
    assert len({version.attachment_id for version in versions}) == 1
    assert sorted(version.number for version in versions) == [1, 2]
    storage = get_storage(app)
    assert all(storage.head(version.storage_key) is not None for version in versions)
