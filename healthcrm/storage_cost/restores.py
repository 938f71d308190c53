"""Restores of archived files: opening a file in GLACIER or DEEP_ARCHIVE asks for a readable copy first.

Who may open a file may ask for it back, through the same access checks (staff through the attachment's
routes, the patient through their documents, a share's recipient through the share): the views load the
version the way opening it would, then call `request_restore` with the chosen tier. The request is one row
(`FileRestore`, one active per version, kept by a unique partial index: two clicks start one restore), the
`file.restore_requested` audit event, and the `storage.restore` job after commit, which asks the store.

`check_restores` (periodic, every few minutes) asks the store how each restore is doing: once the copy is
readable the restore is READY (`file.restore_ready`), the person who asked is told in the app and by email
(a job after commit, sent once); while the copy lasts the file opens as any other; when it expires the
restore is EXPIRED and the file is archived again. A share's recipient cannot choose a tier: the share's
pages start a Standard restore on the clinic's behalf the first time they show the file (README, "Archived
files and restores"), and the clinician of the record is told in the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..accounts.models import Tenant, User
from ..audit.services import Actor, record_event
from ..clock import format_clinic_time, utcnow
from ..errors import DomainError
from ..extensions import db
from ..files.models import AttachmentVersion
from ..files.storage import (
    ARCHIVED_CLASSES,
    RESTORE_TIERS,
    RESTORED,
    LocalStorage,
    ObjectNotFoundError,
    Storage,
    StoredObject,
    get_storage,
)
from ..portal.models import Notification
from ..portal.notifications import notify_staff
from ..records.models import MedicalRecord
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .prices import GB, PriceTable, load_prices
from .restore_models import (
    ACTIVE_CONDITION,
    ACTIVE_STATES,
    CLOSED,
    EXPIRED,
    FAILED,
    PENDING,
    READY,
    VIA_PORTAL,
    VIA_SHARE,
    VIA_STAFF,
    FileRestore,
)

log = logging.getLogger(__name__)

RESTORE_JOB = "storage.restore"
EMAIL_JOB = "storage.restore_email"
NOTICE_KIND = "file_restore"
# How long a restored copy stays readable (S3 keeps it 1 to 30 days; it is billed as STANDARD meanwhile).
RESTORE_DAYS_DEFAULT = 7
# The tier a share's recipient gets: hours rather than days, cents rather than dollars (see the README).
SHARE_TIER = "Standard"
# A pending restore whose job never reached the store (the queue was down) is asked again after this.
START_RETRY_AFTER = timedelta(minutes=2)
CHECK_BATCH = 500


class RestoreError(DomainError):
    """A restore that cannot be asked for as given (a tier the class lacks); `message` is for the person."""


@dataclass(frozen=True)
class TierChoice:
    """One retrieval tier for one file: how long it takes and what it costs the clinic, in USD."""

    tier: str
    hours: float
    retrieval: float  # the retrieval itself (per GB and per request)
    copy: float  # keeping the restored copy for the restore's days (billed as STANDARD)
    currency: str

    @property
    def total(self) -> float:
        return self.retrieval + self.copy

    @property
    def wait(self) -> str:
        """The wait in words: "about 5 minutes", "about 5 hours", "about 2 days"."""
        if self.hours < 1:
            minutes = max(1, round(self.hours * 60))
            return f"about {minutes} minute{'s' if minutes != 1 else ''}"
        if self.hours < 36:
            hours = round(self.hours)
            return f"about {hours} hour{'s' if hours != 1 else ''}"
        return f"about {round(self.hours / 24)} days"


def money(amount: float, currency: str = "USD") -> str:
    """A small amount as a person reads it: "$0.03", "under $0.01", "free"."""
    symbol = "$" if currency == "USD" else f"{currency} "
    if amount <= 0:
        return "free"
    if amount < 0.01:
        return f"under {symbol}0.01"
    return f"{symbol}{amount:,.2f}"


@dataclass
class ArchiveState:
    """What the app knows of an archived version: its class and its active restore, if any."""

    version: AttachmentVersion
    restore: FileRestore | None

    @property
    def storage_class(self) -> str:
        return self.version.storage_class

    @property
    def openable(self) -> bool:
        """A restored copy is readable now, so the file opens as any other."""
        restore = self.restore
        return bool(
            restore is not None
            and restore.status == READY
            and (restore.expires_at is None or restore.expires_at > utcnow())
        )

    @property
    def retrieving(self) -> bool:
        return self.restore is not None and self.restore.status == PENDING


def restore_days() -> int:
    return int(current_app.config.get("STORAGE_RESTORE_DAYS", RESTORE_DAYS_DEFAULT))


def _storage() -> Storage:
    return get_storage(current_app)


def _prices() -> PriceTable:
    return load_prices(current_app.config)


# --- what the app knows -------------------------------------------------------------------------------------


def active_restore(version: AttachmentVersion) -> FileRestore | None:
    return db.session.scalar(
        scoped(FileRestore, version.tenant_id).where(
            FileRestore.version_id == version.id, FileRestore.status.in_(ACTIVE_STATES)
        )
    )


def archive_state(version: AttachmentVersion | None) -> ArchiveState | None:
    """The archive state of a version from the database alone (no request to the store), or None when its
    class is not an archived one: what the pages show (the class is refreshed daily, and checked whenever
    the file is opened)."""
    if version is None or version.storage_class not in ARCHIVED_CLASSES:
        return None
    return ArchiveState(version, active_restore(version))


def refresh_state(version: AttachmentVersion) -> ArchiveState | None:
    """The archive state after asking the store (one HEAD): the version's class is corrected when the store
    says otherwise (a lifecycle rule moved it since the last refresh), and its active restore is brought up
    to date (ready, expired). Commits what changed."""
    _refresh(version)
    _commit()
    return archive_state(version)


def _refresh(version: AttachmentVersion) -> None:
    stored = _storage().head(version.storage_key)
    if stored is not None and stored.storage_class != version.storage_class:
        version.storage_class = stored.storage_class
    restore = active_restore(version)
    if restore is not None:
        _reconcile(restore, stored)


def show_archived(actor: Actor, version: AttachmentVersion) -> ArchiveState | None:
    """The archived file's page: its state after asking the store, its showing audited as a look at the
    file's page (it names the file and its speeds), committed with what the refresh changed."""
    _refresh(version)
    record_event(
        actor,
        "attachment.show",
        resource_type="attachment",
        resource_id=version.attachment_id,
        patient_id=version.attachment.patient_id,
    )
    _commit()
    return archive_state(version)


def tier_choices(version: AttachmentVersion, prices: PriceTable | None = None) -> list[TierChoice]:
    """The tiers the version's class offers, fastest first, each with its wait and its price for this
    file's stored size (and for keeping the copy the restore's days)."""
    prices = prices or _prices()
    price = prices.price(version.storage_class)
    standard = prices.price("STANDARD")
    gigabytes = (version.stored_size or 0) / GB
    days = restore_days()
    local = _storage()
    choices = []
    for tier in RESTORE_TIERS:
        if tier not in price.retrieval_hours:
            continue  # DEEP_ARCHIVE has no Expedited
        hours = price.retrieval_hours[tier]
        if isinstance(local, LocalStorage):
            hours = local.restore_seconds / 3600  # the folder's pretend restore
        retrieval = gigabytes * price.retrieval_per_gb.get(tier, 0.0) + (
            price.retrieval_requests_per_1000.get(tier, 0.0) / 1000
        )
        copy = gigabytes * standard.gb_month * days / 30
        choices.append(TierChoice(tier, hours, retrieval, copy, prices.currency))
    return choices


def _expected_ready(version: AttachmentVersion, tier: str, now: datetime) -> datetime:
    for choice in tier_choices(version):
        if choice.tier == tier:
            return now + timedelta(hours=choice.hours)
    return now


# --- asking -------------------------------------------------------------------------------------------------


def request_restore(
    actor: Actor, version: AttachmentVersion, tier: str, *, via: str, share_id: int | None = None
) -> tuple[FileRestore, bool]:
    """Ask for an archived version back at `tier` (the caller has already found the actor may open it).

    Returns the active restore and whether this call started it: a second request (a double click, another
    person) gets the one already under way and changes nothing. Raises RestoreError for a tier the class
    lacks and for a file that is not archived (or is readable again). Audited, committed; the job that
    asks the store is queued after the commit."""
    if via not in (VIA_STAFF, VIA_PORTAL, VIA_SHARE):
        raise ValueError(f"unknown way of asking: {via!r}")
    state = refresh_state(version)
    if state is None:
        raise RestoreError("This file is not archived: it opens as it is.", "tier")
    if state.restore is not None:
        return state.restore, False
    if tier not in {choice.tier for choice in tier_choices(version)}:
        raise RestoreError("Choose one of the retrieval speeds listed.", "tier")
    now = utcnow()
    values = {
        "tenant_id": version.tenant_id,
        "version_id": version.id,
        "attachment_id": version.attachment_id,
        "patient_id": version.attachment.patient_id,
        "tier": tier,
        "days": restore_days(),
        "status": PENDING,
        "via": via,
        "requested_by_id": actor.user_id,
        "share_id": share_id,
        "requested_at": now,
        "expected_ready_at": _expected_ready(version, tier, now),
    }
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    # ON CONFLICT on the partial unique index: of two racing requests one inserts, the other changes
    # nothing (on PostgreSQL it waits for the winner's commit; on SQLite the write lock orders them).
    statement = (
        insert(FileRestore.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"], index_where=text(ACTIVE_CONDITION))
        .returning(FileRestore.__table__.c.id)
    )
    inserted = db.session.execute(statement).scalar()
    if inserted is None:
        db.session.rollback()
        restore = active_restore(version)
        if restore is None:  # ended between the two statements: ask again
            return request_restore(actor, version, tier, via=via, share_id=share_id)
        return restore, False
    record_event(
        actor,
        "file.restore_requested",
        resource_type="attachment_version",
        resource_id=version.id,
        patient_id=version.attachment.patient_id,
        changed_fields=["tier"],
    )
    if via == VIA_SHARE:
        _tell_clinician(version, now, values["expected_ready_at"])
    db.session.commit()
    restore = get_scoped(FileRestore, inserted, version.tenant_id)
    _queue(RESTORE_JOB, restore)
    return restore, True


def _tell_clinician(version: AttachmentVersion, now: datetime, ready_at: datetime) -> None:
    """A share's recipient started a restore on the clinic's behalf: the record's clinician sees it."""
    attachment = version.attachment
    record = (
        get_scoped(MedicalRecord, attachment.record_id, version.tenant_id) if attachment.record_id else None
    )
    if record is None:
        return
    zone = db.session.get(Tenant, version.tenant_id).timezone
    notify_staff(
        version.tenant_id,
        [record.doctor_id],
        NOTICE_KIND,
        f"A share link's recipient opened the archived file {attachment.filename}: it is being retrieved "
        f"(Standard), ready around {format_clinic_time(ready_at, zone)}.",
        f"/files/{attachment.id}/versions/{version.id}/archived",
    )


def retrieve_for_share(share, versions: list[AttachmentVersion], *, actor: Actor) -> dict[int, FileRestore]:
    """Start a Standard restore for each archived version a share's page shows (those without one), on
    the clinic's behalf; return the active restores by version id. Versions the store says are readable
    (restored, or out of the archive) come back without one."""
    found: dict[int, FileRestore] = {}
    for version in versions:
        if version is None or version.storage_class not in ARCHIVED_CLASSES:
            continue
        tier = SHARE_TIER
        if SHARE_TIER not in {choice.tier for choice in tier_choices(version)}:
            continue
        try:
            restore, _started = request_restore(actor, version, tier, via=VIA_SHARE, share_id=share.id)
        except RestoreError:
            continue  # readable after all
        found[version.id] = restore
    return found


def _queue(kind: str, restore: FileRestore) -> None:
    _queue_ids(kind, restore.id, restore.tenant_id)


def _queue_ids(kind: str, restore_id: int, tenant_id: int) -> None:
    from ..jobs.queue import enqueue  # noqa: PLC0415 - jobs imports every area's tasks

    label = "File restore" if kind == RESTORE_JOB else "File restore email"
    try:
        enqueue(kind, restore_id, tenant_id=tenant_id, label=label)
    except redis.RedisError:
        # The periodic check asks the store for pending restores no job started, and sends unsent emails.
        log.warning("%s for restore %s not queued (the queue is down)", kind, restore_id)


# --- the store's answer -------------------------------------------------------------------------------------


def start_restore(restore_id: int, tenant_id: int) -> str:
    """The `storage.restore` job: ask the store for the copy (asking twice is harmless), then see whether it
    is ready already (moto, and the local folder with no delay, restore at once)."""
    restore = get_scoped(FileRestore, restore_id, tenant_id)
    if restore is None or restore.status != PENDING:
        return "nothing to do"
    version = restore.version
    storage = _storage()
    try:
        storage.request_restore(version.storage_key, days=restore.days, tier=restore.tier)
    except ObjectNotFoundError:
        _end(restore, FAILED, "The stored file is missing.")
        db.session.commit()
        return "missing"
    except ValueError:
        # Not archived any more (or in a class without that tier): what the store says decides below.
        pass
    db.session.execute(
        update(FileRestore)
        .where(FileRestore.id == restore.id, FileRestore.started_at.is_(None))
        .values(started_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(restore)
    _reconcile(restore, storage.head(version.storage_key))
    _commit()
    return restore.status


def _reconcile(restore: FileRestore, stored: StoredObject | None) -> None:
    """Bring one active restore in line with what the store says of its object (in the caller's
    transaction; the ready notice's email is queued after the caller commits)."""
    now = utcnow()
    if stored is None:
        _end(restore, FAILED, "The stored file is missing.")
        return
    if restore.status == PENDING:
        if not stored.archived:
            _mark_ready(restore, None)
        elif stored.restore == RESTORED:
            _mark_ready(restore, _naive(stored.restore_expires))
        elif stored.restore is None and restore.started_at is not None:
            # The store forgot it (a lost request): ask again, harmlessly.
            try:
                _storage().request_restore(stored.key, days=restore.days, tier=restore.tier)
            except ValueError as error:
                _end(restore, FAILED, str(error)[:300])
        return
    if restore.status == READY:
        if not stored.archived:
            _end(restore, CLOSED, None)
        elif not stored.readable or (restore.expires_at is not None and restore.expires_at <= now):
            _end(restore, EXPIRED, None)
        elif stored.restore_expires is not None:
            restore.expires_at = _naive(stored.restore_expires)


def _naive(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment else None


def _end(restore: FileRestore, status: str, error: str | None) -> None:
    changed = db.session.execute(
        update(FileRestore)
        .where(FileRestore.id == restore.id, FileRestore.status.in_(ACTIVE_STATES))
        .values(status=status, ended_at=utcnow(), error=error)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        db.session.refresh(restore)


def _mark_ready(restore: FileRestore, expires_at: datetime | None) -> bool:
    """PENDING → READY once (a guarded UPDATE: the periodic check and a page that looks at the same time
    notify once): audited, the person who asked told in the app; their email after the commit."""
    now = utcnow()
    changed = db.session.execute(
        update(FileRestore)
        .where(FileRestore.id == restore.id, FileRestore.status == PENDING)
        .values(status=READY, ready_at=now, expires_at=expires_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        return False
    db.session.refresh(restore)
    record_event(
        Actor.system(restore.tenant_id),
        "file.restore_ready",
        resource_type="attachment_version",
        resource_id=restore.version_id,
        patient_id=restore.patient_id,
    )
    user = get_scoped(User, restore.requested_by_id, restore.tenant_id) if restore.requested_by_id else None
    if user is not None and user.active:
        _notify_ready(restore, user)
        db.session.info.setdefault(_READY_KEY, []).append((restore.id, restore.tenant_id))
    return True


def ready_text(restore: FileRestore) -> str:
    """The notice: which file (its name only, never more), until when it opens."""
    zone = db.session.get(Tenant, restore.tenant_id).timezone
    until = f" until {format_clinic_time(restore.expires_at, zone)}" if restore.expires_at else ""
    return f"The archived file {restore.attachment.filename} you asked for is ready: it opens{until}."


def restore_link(restore: FileRestore, *, for_patient: bool) -> str:
    if for_patient:
        return f"/portal/documents/{restore.attachment_id}/archived"
    return f"/files/{restore.attachment_id}/versions/{restore.version_id}/archived"


def _notify_ready(restore: FileRestore, user: User) -> None:
    if user.is_patient:
        db.session.add(
            Notification(
                tenant_id=restore.tenant_id,
                user_id=user.id,
                patient_id=restore.patient_id,
                kind=NOTICE_KIND,
                text=ready_text(restore)[:500],
                link=restore_link(restore, for_patient=True),
            )
        )
        return
    notify_staff(
        restore.tenant_id,
        [user.id],
        NOTICE_KIND,
        ready_text(restore),
        restore_link(restore, for_patient=False),
    )


# Restores made ready in the current transaction, whose email job is queued once it commits.
_READY_KEY = "storage_restores_ready"


def _commit() -> None:
    """Commit, then queue the email of each restore this transaction made ready (a job queued before the
    commit could run before the row says READY). A rolled-back one's job finds it not ready: harmless."""
    db.session.commit()
    for restore_id, tenant_id in db.session.info.pop(_READY_KEY, []):
        _queue_ids(EMAIL_JOB, restore_id, tenant_id)


def email_ready(restore_id: int, tenant_id: int) -> bool:
    """The `storage.restore_email` job: email the person who asked that the file is ready, once (the
    guarded UPDATE of `emailed_at` is held until the message is handed over, so a second run finds it
    sent). The email names no file: a subject or body seen over someone's shoulder says nothing of health."""
    claimed = db.session.execute(
        update(FileRestore)
        .where(
            FileRestore.id == restore_id,
            FileRestore.tenant_id == tenant_id,
            FileRestore.emailed_at.is_(None),
            FileRestore.status == READY,
        )
        .values(emailed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        return False
    restore = get_scoped(FileRestore, restore_id, tenant_id)
    user = get_scoped(User, restore.requested_by_id, tenant_id) if restore.requested_by_id else None
    if user is None or not user.active or not user.email:
        db.session.commit()
        return False
    from ..mail.services import compose, deliver  # noqa: PLC0415 - mail renders templates (Flask)

    tenant = db.session.get(Tenant, tenant_id)
    url = current_app.config["PUBLIC_URL"] + restore_link(restore, for_patient=user.is_patient)
    until = format_clinic_time(restore.expires_at, tenant.timezone) if restore.expires_at else None
    try:
        deliver(
            compose(
                user.email,
                "file_restore_ready",
                tenant_id=tenant_id,
                clinic=tenant.name,
                url=url,
                until=until,
            )
        )
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return True


def check_restores() -> str:
    """Periodic (every few minutes): every clinic's active restores against the store. Pending ones whose
    job never reached the store are started; ready ones past their copy's end are archived again; ready
    ones whose email no job sent are emailed."""
    now = utcnow()
    done = {"ready": 0, "expired": 0, "started": 0}
    checked, after = 0, 0
    while True:
        # Every active restore, a batch at a time (keyset on the id): ready copies wait days for their end,
        # and must not keep the pending ones after them from being looked at.
        rows = db.session.execute(
            select(FileRestore.id, FileRestore.tenant_id)
            .where(FileRestore.status.in_(ACTIVE_STATES), FileRestore.id > after)
            .order_by(FileRestore.id)
            .limit(CHECK_BATCH)
            .execution_options(**ALL_TENANTS)
        ).all()
        db.session.rollback()
        if not rows:
            break
        after = rows[-1][0]
        checked += len(rows)
        for restore_id, tenant_id in rows:
            try:
                done_now = _check_one(restore_id, tenant_id, now)
            except Exception:
                db.session.rollback()
                log.exception("restore %s not checked; it is checked again on the next run", restore_id)
                continue
            if done_now:
                done[done_now] += 1
    unsent = db.session.execute(
        select(FileRestore.id, FileRestore.tenant_id)
        .where(
            FileRestore.status == READY,
            FileRestore.emailed_at.is_(None),
            FileRestore.requested_by_id.is_not(None),
            FileRestore.ready_at < now - START_RETRY_AFTER,
        )
        .limit(CHECK_BATCH)
        .execution_options(**ALL_TENANTS)
    ).all()
    db.session.rollback()
    for restore_id, tenant_id in unsent:
        try:
            email_ready(restore_id, tenant_id)
        except Exception:
            log.exception("the ready email of restore %s not sent; tried again on the next run", restore_id)
    return (
        f"{checked} active restores checked: {done['ready']} ready, {done['expired']} archived again, "
        f"{done['started']} started again"
    )


def _check_one(restore_id: int, tenant_id: int, now: datetime) -> str | None:
    restore = get_scoped(FileRestore, restore_id, tenant_id)
    if restore is None or not restore.active:
        return None
    if restore.status == PENDING and restore.started_at is None:
        if restore.requested_at > now - START_RETRY_AFTER:
            return None  # its job has not had its turn yet
        start_restore(restore.id, tenant_id)
        db.session.refresh(restore)
        return "started" if restore.status == PENDING else ("ready" if restore.status == READY else None)
    before = restore.status
    _reconcile(restore, _storage().head(restore.version.storage_key))
    _commit()
    if before == PENDING and restore.status == READY:
        return "ready"
    if before == READY and restore.status == EXPIRED:
        return "expired"
    return None


# --- for the pages ------------------------------------------------------------------------------------------


def restores_of(tenant_id: int, limit: int = 100) -> list[FileRestore]:
    """The clinic's restores, newest first (the admins' list)."""
    return list(
        db.session.scalars(scoped(FileRestore, tenant_id).order_by(FileRestore.id.desc()).limit(limit))
    )
