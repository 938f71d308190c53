"""Each file's storage class as the store has it: recorded at upload, refreshed daily by `storage.classes`.

Lifecycle rules move objects between classes without telling the app, so once a day the clinic's objects
are listed (a page at a time) next to its versions, and every version whose class differs is corrected in
batches. A version that left the archive needs no restore any more: its active restore is closed. Running
it twice changes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, select, update

from ..clock import utcnow
from ..extensions import db
from ..files.models import AttachmentVersion
from ..files.storage import ARCHIVED_CLASSES, get_storage
from .inventory import ROWS_PER_FETCH, in_key_order, merge
from .restore_models import ACTIVE_STATES, CLOSED, FileRestore

UPDATE_BATCH = 500


@dataclass
class ClassRefresh:
    objects: int = 0  # listed under the clinic's prefix
    versions: int = 0  # versions whose object was listed
    changed: int = 0  # versions whose class was corrected
    restores_closed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.objects} objects listed, {self.versions} versions seen, "
            f"{self.changed} classes corrected, {self.restores_closed} restores closed"
        )


def refresh_classes(tenant_id: int) -> ClassRefresh:
    """Correct the storage class of the clinic's versions from a listing of its objects."""
    storage = get_storage(current_app)
    table = AttachmentVersion.__table__
    rows = _version_rows(tenant_id)
    found = ClassRefresh()
    changes: list[tuple[int, str]] = []
    # The merge only reads; the corrections are written after it, so no commit closes the streaming cursor.
    for _key, listed, versions in merge(storage.iter_objects(f"{tenant_id}/"), rows):
        if listed is not None:
            found.objects += 1
        if listed is None or not versions:
            continue
        found.versions += len(versions)
        changes += [
            (version_id, listed.storage_class)
            for version_id, known in versions
            if known != listed.storage_class
        ]
    db.session.rollback()
    left_archive = []
    for start in range(0, len(changes), UPDATE_BATCH):
        batch = changes[start : start + UPDATE_BATCH]
        result = db.session.execute(
            update(table)
            .where(
                table.c.tenant_id == tenant_id,
                table.c.id == bindparam("version_id"),
                table.c.storage_class != bindparam("new_class"),
            )
            .values(storage_class=bindparam("new_class")),
            [{"version_id": version_id, "new_class": new} for version_id, new in batch],
            execution_options={"synchronize_session": False},
        )
        found.changed += max(result.rowcount, 0)
        left_archive += [version_id for version_id, new in batch if new not in ARCHIVED_CLASSES]
        db.session.commit()
    for start in range(0, len(left_archive), UPDATE_BATCH):
        closed = db.session.execute(
            update(FileRestore)
            .where(
                FileRestore.tenant_id == tenant_id,
                FileRestore.version_id.in_(left_archive[start : start + UPDATE_BATCH]),
                FileRestore.status.in_(ACTIVE_STATES),
            )
            .values(status=CLOSED, ended_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        found.restores_closed += max(closed.rowcount, 0)
        db.session.commit()
    return found


def _version_rows(tenant_id: int):
    table = AttachmentVersion.__table__
    statement = (
        select(table.c.storage_key, table.c.id, table.c.storage_class)
        .where(table.c.tenant_id == tenant_id)
        .order_by(in_key_order(table.c.storage_key))
    )
    for key, version_id, storage_class in db.session.execute(
        statement.execution_options(yield_per=ROWS_PER_FETCH)
    ):
        yield key, (version_id, storage_class)
