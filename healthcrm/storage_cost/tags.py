"""The `archive=allowed` tag: on exactly the stored versions the clinic's lifecycle rule may move.

A version may be archived when
- it belongs to a finalized record, or to a patient document (no record: a patient's upload, a message
  attachment or a clinic letter is complete when stored and is never edited, only given new versions);
  a draft's files are still being worked on;
- its virus scan let it open (clean, or not scanned): a pending one is about to be read by the scanner;
- its patient has no active legal hold;
- nobody opened it (the files' access log) in the clinic's last N days;
- it is stored in at least 128 KB: smaller objects are never moved down by Intelligent-Tiering and would
  carry 40 KB of archive metadata each (healthcrm/storage_cost/checker.py has the figures);
- and the clinic has archiving on.

What changes the answer, and when the tag follows:
- a legal hold placed, or a file opened (viewed, downloaded, zipped): the tag is removed at once, right
  after the transaction that recorded it commits (session events below), for every file of that patient or
  for that version. It costs one indexed query per commit that opened files, and a call to the store only
  for a version that carried the tag, i.e. at most once per N days per version;
- everything else (a record finalized, a hold released, a file no longer recently opened, settings
  changed): the daily job `storage.tags` (and the job a settings change queues) re-evaluates every version
  of the clinic, a batch at a time, and writes only the tags that differ from what `ArchiveTag` says the
  store has. Running it again writes nothing.

Races: the job writes its `ArchiveTag` rows (committed) before tagging, and checks the versions again
afterwards; the at-once removal reads the rows after its own commit. Whichever order a hold and the job
run in, one of them sees the other and the tag ends up removed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import and_, delete, event, exists, or_, select
from sqlalchemy.orm import Session

from ..accounts.models import Tenant
from ..clock import utcnow
from ..extensions import db
from ..files.models import OPENABLE_SCAN_STATES, Attachment, AttachmentVersion, FileAccess
from ..files.storage import ObjectNotFoundError, Storage, get_storage
from ..jobs.queue import task
from ..records.models import FINALIZED, MedicalRecord
from ..retention.models import LegalHold
from ..tenant_scope import ALL_TENANTS
from .lifecycle import TAG_ALLOWED, TAG_KEY, lifecycle_settings
from .models import ArchiveTag, LifecycleSettings

log = logging.getLogger(__name__)

# Objects below this are kept out of archiving (Intelligent-Tiering's and the IA classes' minimum).
MIN_ARCHIVE_BYTES = 128 * 1024
BATCH = 2000


def archivable(tenant_id: int, *, opened_since: datetime | None) -> list:
    """The criteria (for a SELECT of AttachmentVersion joined to Attachment and an outer-joined
    MedicalRecord, see `_versions`) of a version that may be archived; `opened_since` None leaves out
    the recently-opened test (the rule checker's view of what the rule would move in time)."""
    criteria = [
        or_(Attachment.record_id.is_(None), MedicalRecord.status == FINALIZED),
        AttachmentVersion.stored_size >= MIN_ARCHIVE_BYTES,
        AttachmentVersion.scan_status.in_(sorted(OPENABLE_SCAN_STATES)),
        ~exists().where(
            LegalHold.tenant_id == tenant_id,
            LegalHold.patient_id == Attachment.patient_id,
            LegalHold.released_at.is_(None),
        ),
    ]
    if opened_since is not None:
        criteria.append(
            ~exists().where(
                FileAccess.tenant_id == tenant_id,
                FileAccess.version_id == AttachmentVersion.id,
                FileAccess.occurred_at >= opened_since,
            )
        )
    return criteria


def versions_query(tenant_id: int, *columns):
    """A SELECT of the clinic's versions with their attachment and (when on a record) the record."""
    return (
        select(*columns)
        .select_from(AttachmentVersion)
        .join(
            Attachment,
            and_(Attachment.id == AttachmentVersion.attachment_id, Attachment.tenant_id == tenant_id),
        )
        .outerjoin(
            MedicalRecord,
            and_(MedicalRecord.id == Attachment.record_id, MedicalRecord.tenant_id == tenant_id),
        )
        .where(AttachmentVersion.tenant_id == tenant_id)
    )


def _opened_since(settings: LifecycleSettings, now: datetime) -> datetime:
    return now - timedelta(days=settings.recent_days)


def eligible_ids(
    tenant_id: int,
    ids: Iterable[int],
    settings: LifecycleSettings,
    now: datetime,
    *,
    id_range: tuple[int, int] | None = None,
) -> set[int]:
    """Which of `ids` may carry the tag now; with `id_range` (first, last), which of the clinic's versions
    with ids in that range (a batch: cheaper than a list of 500 ids)."""
    ids = list(ids)
    if not settings.enabled or not (ids or id_range):
        return set()
    chosen = AttachmentVersion.id.between(*id_range) if id_range else AttachmentVersion.id.in_(ids)
    query = versions_query(tenant_id, AttachmentVersion.id).where(
        chosen, *archivable(tenant_id, opened_since=_opened_since(settings, now))
    )
    return set(db.session.scalars(query))


# --- writing tags ------------------------------------------------------------------------------------------


def write_tag(storage: Storage, key: str, allowed: bool) -> bool:
    """Set or clear `archive=allowed` on the object, keeping any other tag; True when it had to be written."""
    tags = storage.get_tags(key)
    wanted = dict(tags)
    if allowed:
        wanted[TAG_KEY] = TAG_ALLOWED
    else:
        wanted.pop(TAG_KEY, None)
    if wanted == tags:
        return False
    storage.set_tags(key, wanted)
    return True


def _insert_rows(tenant_id: int, ids: list[int], now: datetime) -> None:
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415
    else:
        from sqlalchemy.dialects.sqlite import insert  # noqa: PLC0415
    rows = [{"tenant_id": tenant_id, "version_id": version_id, "tagged_at": now} for version_id in ids]
    db.session.execute(insert(ArchiveTag).values(rows).on_conflict_do_nothing(index_elements=["version_id"]))


def _delete_rows(session: Session, tenant_id: int, ids: list[int]) -> None:
    session.execute(
        delete(ArchiveTag).where(ArchiveTag.tenant_id == tenant_id, ArchiveTag.version_id.in_(ids))
    )


def _untag(storage: Storage, session: Session, tenant_id: int, keys: dict[int, str]) -> int:
    """Clear the tag on each version's object, then forget its row (in that order: see the module's
    docstring); return how many objects were written."""
    written = 0
    for key in keys.values():
        # A missing object has nothing to archive; the sweeper reports it.
        with contextlib.suppress(ObjectNotFoundError):
            written += write_tag(storage, key, allowed=False)
    _delete_rows(session, tenant_id, list(keys))
    session.commit()
    return written


class Tally(dict):
    def add(self, name: str, n: int = 1) -> None:
        self[name] = self.get(name, 0) + n


def retag_clinic(
    tenant_id: int,
    *,
    batch: int = BATCH,
    verify: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Re-evaluate every version of the clinic, `batch` at a time, and write only the tags that differ.
    Returns counts: allowed and removed (rows changed), written (calls that changed an object's tags),
    unchanged, missing (versions whose object is not in storage).

    `verify` also reads every object's tags and corrects those that differ from the rows (one request per
    object: for `flask storage tags --verify`, after a clinic was loaded into another store or tags were
    changed by hand), instead of trusting `ArchiveTag`."""
    storage = get_storage(current_app)
    settings = lifecycle_settings(tenant_id)
    now = utcnow()
    total = db.session.scalar(
        select(db.func.count()).select_from(AttachmentVersion).where(AttachmentVersion.tenant_id == tenant_id)
    )
    tally, done, last = Tally(allowed=0, removed=0, written=0, unchanged=0, missing=0), 0, 0
    while True:
        rows = db.session.execute(
            select(AttachmentVersion.id, AttachmentVersion.storage_key)
            .where(AttachmentVersion.tenant_id == tenant_id, AttachmentVersion.id > last)
            .order_by(AttachmentVersion.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        keys = {row.id: row.storage_key for row in rows}
        # The batch is every version of the clinic from its first id to its last.
        span = (rows[0].id, rows[-1].id)
        last = span[1]
        wanted = eligible_ids(tenant_id, (), settings, now, id_range=span)
        have = set(
            db.session.scalars(
                select(ArchiveTag.version_id).where(
                    ArchiveTag.tenant_id == tenant_id, ArchiveTag.version_id.between(*span)
                )
            )
        )
        db.session.commit()
        # A version committed meanwhile with an id inside the span waits for the next run.
        wanted, have = wanted & keys.keys(), have & keys.keys()
        add, remove = sorted(wanted - have), sorted(have - wanted)
        tally.add("unchanged", len(keys) - len(add) - len(remove))
        if verify:
            tally.add("written", _verify(storage, {i: keys[i] for i in sorted(wanted & have)}, True))
            tally.add(
                "written", _verify(storage, {i: keys[i] for i in sorted(set(keys) - wanted - have)}, False)
            )
        if add:
            _allow(storage, tenant_id, {i: keys[i] for i in add}, settings, now, tally)
        if remove:
            tally.add("written", _untag(storage, db.session, tenant_id, {i: keys[i] for i in remove}))
            tally.add("removed", len(remove))
        done += len(rows)
        if progress is not None and total:
            progress(min(99, done * 100 // total))
    return dict(tally)


def _verify(storage: Storage, keys: dict[int, str], allowed: bool) -> int:
    written = 0
    for key in keys.values():
        with contextlib.suppress(ObjectNotFoundError):
            written += write_tag(storage, key, allowed=allowed)
    return written


def _allow(
    storage: Storage,
    tenant_id: int,
    keys: dict[int, str],
    settings: LifecycleSettings,
    now: datetime,
    tally: Tally,
) -> None:
    # The rows first, committed: a hold placed from now on finds them and removes the tags we write.
    _insert_rows(tenant_id, list(keys), now)
    db.session.commit()
    missing = []
    for version_id, key in keys.items():
        try:
            tally.add("written", write_tag(storage, key, allowed=True))
        except ObjectNotFoundError:
            missing.append(version_id)
    if missing:
        _delete_rows(db.session, tenant_id, missing)
        db.session.commit()
        tally.add("missing", len(missing))
    tagged = {i: key for i, key in keys.items() if i not in missing}
    # A hold placed or a file opened while we tagged committed before this read, or finds our rows.
    still = eligible_ids(tenant_id, tagged, settings, now)
    late = {i: key for i, key in tagged.items() if i not in still}
    db.session.commit()
    if late:
        tally.add("written", _untag(storage, db.session, tenant_id, late))
    tally.add("allowed", len(tagged) - len(late))


def retag_all_clinics() -> str:
    """Periodic (daily): `retag_clinic` for every clinic."""
    clinics = db.session.scalars(select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS)).all()
    tally = Tally()
    for tenant_id in clinics:
        for name, n in retag_clinic(tenant_id).items():
            tally.add(name, n)
    return f"{len(clinics)} clinics: " + ", ".join(f"{n} {name}" for name, n in sorted(tally.items()))


@task("storage.tags")
def retag(*, progress) -> dict:
    """The clinic's tags, re-evaluated (queued by a settings change; the daily run covers every clinic)."""
    return retag_clinic(progress.tenant_id, progress=progress)


# --- at once: a hold placed, a file opened -----------------------------------------------------------------

_PENDING = "storage_cost.untag"


@event.listens_for(Session, "after_flush")
def _note_what_untags(session: Session, _context) -> None:
    for obj in session.new:
        if isinstance(obj, FileAccess):
            session.info.setdefault(_PENDING, set()).add(("version", obj.tenant_id, obj.version_id))
        elif isinstance(obj, LegalHold):
            session.info.setdefault(_PENDING, set()).add(("patient", obj.tenant_id, obj.patient_id))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_commit")
def _untag_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending or not has_app_context():
        return
    try:
        untag_now(pending)
    except Exception:
        # The change itself is committed; the daily job removes the tag its row still records.
        log.exception("could not remove archive tags at once (the daily storage.tags job will)")


def untag_now(pending: Iterable[tuple[str, int, int]]) -> int:
    """Remove the tag from the versions opened and from every file of the patients put on hold, reading
    `ArchiveTag` after their commit. Runs on its own session: the caller's has just committed."""
    by_tenant: dict[int, tuple[set[int], set[int]]] = {}
    for kind, tenant_id, object_id in pending:
        versions, patients = by_tenant.setdefault(tenant_id, (set(), set()))
        (versions if kind == "version" else patients).add(object_id)
    storage = get_storage(current_app)
    written = 0
    with Session(db.engine) as session:
        for tenant_id, (versions, patients) in by_tenant.items():
            query = (
                select(ArchiveTag.version_id, AttachmentVersion.storage_key)
                .join(
                    AttachmentVersion,
                    and_(
                        AttachmentVersion.id == ArchiveTag.version_id,
                        AttachmentVersion.tenant_id == tenant_id,
                    ),
                )
                .join(
                    Attachment,
                    and_(Attachment.id == AttachmentVersion.attachment_id, Attachment.tenant_id == tenant_id),
                )
                .where(
                    ArchiveTag.tenant_id == tenant_id,
                    or_(
                        ArchiveTag.version_id.in_(sorted(versions)),
                        Attachment.patient_id.in_(sorted(patients)),
                    ),
                )
            )
            keys = {row.version_id: row.storage_key for row in session.execute(query)}
            if keys:
                written += _untag(storage, session, tenant_id, keys)
    return written
