"""The audit archive: months older than the clinic's hot window leave `audit_log` for files in storage.

Each month of a clinic's events becomes one gzip file of JSON lines (every column, in id order) under
`<tenant>/audit-archive/YYYY-MM.jsonl.gz`, written with S3 Object Lock until the end of the audit retention
where the bucket has it, read back and checked against its SHA-256 before the rows leave the table. An
`AuditArchive` row is the month's manifest entry (count, first and last event, last hash, checksum); a
signed `manifest.json` beside the files lists them all for anyone who holds only the storage.

The chain does not break at the boundary: `flask audit verify` walks the archived events and the table
together, in id order, re-hashing every event (`chain_events`). The viewer and the CSV export search
archived months by loading them back as disposable copies (`load_archives`, a job with a progress bar).
Past the audit retention, files are deleted and the deletion is recorded in the chain; the manifest row
stays, so what existed is known.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import heapq
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from flask import current_app
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError

from ..accounts.models import Tenant
from ..clock import add_years, clinic_day_start, clinic_today, utcnow
from ..extensions import db
from ..files.storage import ObjectNotFoundError, get_storage
from ..jobs.queue import task
from ..tenant_scope import ALL_TENANTS
from .models import ArchivedEventCopy, AuditArchive, AuditEvent
from .services import Actor, record_event, retention_settings

FORMAT = "healthcrm-audit-archive/1"
PREFIX = "audit-archive/"
COPIES_KEPT_FOR = timedelta(hours=24)
BATCH = 1_000
COLUMNS = [column.name for column in AuditEvent.__table__.columns]


class ArchiveProblem(Exception):
    """An archive file is missing, unreadable or not what its manifest row says."""

    def __init__(self, archive: AuditArchive, reason: str):
        super().__init__(f"Audit archive {archive.month} ({archive.key}): {reason}")
        self.archive = archive


# --- months -------------------------------------------------------------------------------------------------


def _zone(tenant_id: int) -> str | None:
    return db.session.scalar(
        select(Tenant.timezone).where(Tenant.id == tenant_id).execution_options(**ALL_TENANTS)
    )


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _months_back(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date, zone: str | None) -> tuple[datetime, datetime]:
    """The clinic's month as UTC instants: its first moment and the next month's."""
    return clinic_day_start(month, zone), clinic_day_start(_next_month(month), zone)


def first_hot_month(tenant_id: int) -> date:
    """The oldest month that stays in the table: `hot_months` whole months before the current one."""
    today = clinic_today(_zone(tenant_id))
    return _months_back(date(today.year, today.month, 1), retention_settings(tenant_id).hot_months)


def due_months(tenant_id: int) -> list[date]:
    """The clinic's months with events still in the table but older than its hot window, oldest first."""
    zone = _zone(tenant_id)
    boundary, _ = month_bounds(first_hot_month(tenant_id), zone)
    oldest = db.session.scalar(
        select(func.min(AuditEvent.occurred_at)).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.occurred_at < boundary
        )
    )
    if oldest is None:
        return []
    month, months = date(oldest.year, oldest.month, 1), []
    # The clinic's month of the oldest event may be the one before its UTC month.
    month = _months_back(month, 1) if month_bounds(month, zone)[0] > oldest else month
    while month_bounds(month, zone)[0] < boundary:
        starts, ends = month_bounds(month, zone)
        if db.session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.tenant_id == tenant_id,
                AuditEvent.occurred_at >= starts,
                AuditEvent.occurred_at < ends,
            )
            .limit(1)
        ):
            months.append(month)
        month = _next_month(month)
    return months


# --- the file -----------------------------------------------------------------------------------------------


def _encode(event) -> bytes:
    row = {name: getattr(event, name) for name in COLUMNS}
    row["occurred_at"] = event.occurred_at.isoformat(timespec="microseconds")
    return json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _decode(line: bytes) -> AuditEvent:
    row = json.loads(line)
    row["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
    return AuditEvent(**{name: row.get(name) for name in COLUMNS})


class _Hashing(io.RawIOBase):
    """A stream that hashes what is read through it."""

    def __init__(self, stream):
        self.stream, self.digest, self.size = stream, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.digest.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(64 * 1024):
            pass


def read_archive(archive: AuditArchive) -> Iterator[AuditEvent]:
    """The archive's events in id order (not in any session), checking the file against its checksum as
    it goes; raises ArchiveProblem when the file is missing, unreadable, or not the one recorded."""
    try:
        stream = get_storage(current_app).open_stream(archive.key)
    except ObjectNotFoundError:
        raise ArchiveProblem(archive, "the file is missing from storage") from None
    with stream:
        hashing = _Hashing(stream)
        count = 0
        try:
            with gzip.GzipFile(fileobj=io.BufferedReader(hashing)) as lines:
                for line in lines:
                    event = _decode(line)
                    event.archive_month = archive.month  # where verify says the bad row is
                    count += 1
                    yield event
        except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
            raise ArchiveProblem(archive, f"the file cannot be read ({error.__class__.__name__})") from None
        hashing.drain()
    if hashing.digest.hexdigest() != archive.sha256:
        raise ArchiveProblem(archive, "its SHA-256 is not the one in the manifest (the file was changed)")
    if count != archive.events:
        raise ArchiveProblem(archive, f"it holds {count} events, the manifest says {archive.events}")


def _write_file(events: Iterable[AuditEvent], out) -> dict:
    """Write the events as gzip'd JSON lines (deterministic: no name, no time in the header)."""
    count, first, last = 0, None, None
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as packed:
        for event in events:
            packed.write(_encode(event))
            count += 1
            first = event.id if first is None else first
            last = event
    return {"events": count, "first": first, "last_id": last.id if last else None,
            "last_hash": last.hash if last else None}  # fmt: skip


# --- archiving ----------------------------------------------------------------------------------------------


def _release_rows(archive: AuditArchive) -> int:
    """Delete the archived month's rows from audit_log (on PostgreSQL through the owner's function)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return db.session.scalar(text("SELECT audit_log_release_archived(:id)"), {"id": archive.id})
    return db.session.execute(
        delete(AuditEvent)
        .where(
            AuditEvent.tenant_id == archive.tenant_id,
            AuditEvent.occurred_at >= archive.starts_at,
            AuditEvent.occurred_at < archive.ends_at,
        )
        .execution_options(synchronize_session=False)
    ).rowcount


def archive_month(tenant_id: int, month: date) -> AuditArchive | None:
    """Move one month of the clinic's events into its archive file; None when it is archived already
    (by this run or another: the month is unique per clinic, and the loser of a race writes nothing)."""
    zone = _zone(tenant_id)
    starts, ends = month_bounds(month, zone)
    label = f"{month:%Y-%m}"
    if db.session.scalar(select(AuditArchive.id).where(AuditArchive.tenant_id == tenant_id,
                                                         AuditArchive.month == label)):  # fmt: skip
        return None
    query = (
        select(AuditEvent)
        .where(AuditEvent.tenant_id == tenant_id)
        .where(AuditEvent.occurred_at >= starts, AuditEvent.occurred_at < ends)
        .order_by(AuditEvent.id)
        .execution_options(yield_per=BATCH)
    )
    with tempfile.TemporaryFile() as out:
        written = _write_file(db.session.scalars(query), out)
        if not written["events"]:
            return None
        out.seek(0)
        data = out.read()
    digest = hashlib.sha256(data).hexdigest()
    key = f"{tenant_id}/{PREFIX}{label}.jsonl.gz"
    years = retention_settings(tenant_id).audit_years
    retain_until = datetime.combine(add_years(ends.date(), years), ends.time())
    storage = get_storage(current_app)
    locked = storage.put_retained(key, data, "application/gzip", retain_until)
    archive = AuditArchive(
        tenant_id=tenant_id, month=label, starts_at=starts, ends_at=ends, key=key, sha256=digest,
        size=len(data), events=written["events"], first_event_id=written["first"],
        last_event_id=written["last_id"], last_hash=written["last_hash"], archived_at=utcnow(),
        locked_until=retain_until if locked else None,
    )  # fmt: skip
    # Never lose an event: the stored file is read back, whole, before any row leaves the table.
    list(read_archive(archive))
    db.session.add(archive)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    removed = _release_rows(archive)
    if removed != archive.events:  # an event written into the month meanwhile (only seeding can): later
        db.session.rollback()
        return None
    record_event(Actor.system(tenant_id), "audit.archived", resource_type="audit_archive", resource_id=label,
                 changed_fields=[f"events_{archive.events}"])  # fmt: skip
    db.session.commit()
    write_manifest(tenant_id)
    return archive


def archive_due(tenant_id: int) -> list[AuditArchive]:
    """Archive every month of the clinic that is older than its hot window."""
    return [found for month in due_months(tenant_id) if (found := archive_month(tenant_id, month))]


def _manifest_entry(archive: AuditArchive) -> dict:
    entry = {name: getattr(archive, name) for name in MANIFEST_FIELDS}
    for name in ("starts_at", "ends_at", "deleted_at"):
        entry[name] = entry[name].isoformat() if entry[name] else None
    return entry


MANIFEST_FIELDS = ("month", "key", "sha256", "size", "events", "first_event_id", "last_event_id", "last_hash",
                   "starts_at", "ends_at", "deleted_at")  # fmt: skip


def write_manifest(tenant_id: int) -> str:
    """The signed list of the clinic's archives beside the files (`manifest.json`)."""
    from .checkpoints import key_id, signing_key  # noqa: PLC0415  (checkpoints imports this module)

    archives = db.session.scalars(
        select(AuditArchive).where(AuditArchive.tenant_id == tenant_id).order_by(AuditArchive.month)
    )
    document = {
        "format": FORMAT,
        "tenant_id": tenant_id,
        "written_at": utcnow().isoformat(timespec="microseconds"),
        "archives": [_manifest_entry(a) for a in archives],
    }
    private = signing_key()
    document["key_id"] = key_id(private.public_key())
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    signature = base64.b64encode(private.sign(canonical)).decode()
    key = f"{tenant_id}/{PREFIX}manifest.json"
    body = json.dumps({"manifest": document, "signature": signature}, indent=2).encode()
    get_storage(current_app).put_stream(key, io.BytesIO(body), "application/json")
    return key


# --- retention ----------------------------------------------------------------------------------------------


def delete_past_retention(tenant_id: int) -> int:
    """Delete the files of archived months that ended more than the audit retention ago; the manifest row
    stays (marked deleted) and the deletion is recorded in the chain. Files left by an interrupted run are
    deleted on the next."""
    years = retention_settings(tenant_id).audit_years
    cutoff = datetime.combine(add_years(utcnow().date(), -years), datetime.min.time())
    due = list(
        db.session.scalars(
            select(AuditArchive).where(
                AuditArchive.tenant_id == tenant_id,
                AuditArchive.deleted_at.is_(None),
                AuditArchive.ends_at <= cutoff,
            )
        )
    )
    for archive in due:
        archive.deleted_at = utcnow()
        db.session.execute(delete(ArchivedEventCopy).where(ArchivedEventCopy.archive_id == archive.id))
        record_event(Actor.system(tenant_id), "audit.archive_deleted", resource_type="audit_archive",
                     resource_id=archive.month, changed_fields=[f"events_{archive.events}"])  # fmt: skip
    db.session.commit()
    storage = get_storage(current_app)
    for archive in db.session.scalars(
        select(AuditArchive).where(AuditArchive.tenant_id == tenant_id, AuditArchive.deleted_at.is_not(None))
    ):
        if storage.head(archive.key) is not None:
            storage.delete(archive.key)
    if due:
        write_manifest(tenant_id)
    return len(due)


def run_archiving() -> str:
    """Periodic (daily): for every clinic, archive the months past its hot window and delete archives past
    its audit retention."""
    archived = deleted = 0
    clinics = select(Tenant.id).order_by(Tenant.id).execution_options(**ALL_TENANTS)
    for tenant_id in db.session.scalars(clinics):
        archived += len(archive_due(tenant_id))
        deleted += delete_past_retention(tenant_id)
    return f"{archived} months archived, {deleted} archives past retention deleted"


# --- verifying ----------------------------------------------------------------------------------------------


def archives_of(tenant_id: int) -> list[AuditArchive]:
    return list(
        db.session.scalars(
            select(AuditArchive)
            .where(AuditArchive.tenant_id == tenant_id)
            .order_by(AuditArchive.first_event_id)
        )
    )


def chain_start(archives: list[AuditArchive]) -> tuple[str | None, int]:
    """Where the chain's verifiable part starts: the last hash of the newest deleted archive (the events
    before it are gone past retention), or None for the genesis; and how many events were deleted."""
    gone = [a for a in archives if a.deleted_at is not None]
    if not gone:
        return None, 0
    newest = max(gone, key=lambda a: a.last_event_id or 0)
    return newest.last_hash, sum(a.events for a in gone)


def chain_events(hot: Iterable[AuditEvent], archives: list[AuditArchive]) -> Iterator[AuditEvent]:
    """The clinic's events from the table and its kept archive files together, in id order."""
    streams = [read_archive(a) for a in archives if a.deleted_at is None]
    return heapq.merge(hot, *streams, key=lambda event: event.id)


@lru_cache(maxsize=4)
def _hashes(key: str, sha256: str, events: int) -> dict[int, str]:
    archive = AuditArchive(key=key, sha256=sha256, events=events, month=key)
    return {event.id: event.hash for event in read_archive(archive)}


DELETED = "deleted past retention"


def archived_hash(tenant_id: int, event_id: int) -> str | None:
    """The hash of an archived event (DELETED when its archive is past retention), None when no archive
    holds it."""
    for archive in archives_of(tenant_id):
        if not (archive.first_event_id or 0) <= event_id <= (archive.last_event_id or 0):
            continue
        if archive.deleted_at is not None:
            return DELETED
        try:
            found = _hashes(archive.key, archive.sha256, archive.events).get(event_id)
        except ArchiveProblem:
            return None
        if found:
            return found
    return None


def archived_count(tenant_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(AuditArchive.events), 0)).where(AuditArchive.tenant_id == tenant_id)
    )


# --- searching ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedMonths:
    """The archived months a search covers: the loaded ones are searched, the others can be loaded."""

    loaded: list[AuditArchive]
    waiting: list[AuditArchive]
    deleted: list[AuditArchive]

    @property
    def any(self) -> bool:
        return bool(self.loaded or self.waiting or self.deleted)

    @property
    def waiting_events(self) -> int:
        return sum(a.events for a in self.waiting)


def months_in_range(tenant_id: int, starts: datetime | None, ends: datetime | None) -> ArchivedMonths:
    query = select(AuditArchive).where(AuditArchive.tenant_id == tenant_id)
    if starts is not None:
        query = query.where(AuditArchive.ends_at > starts)
    if ends is not None:
        query = query.where(AuditArchive.starts_at < ends)
    found = list(db.session.scalars(query.order_by(AuditArchive.month)))
    ids = [a.id for a in found if a.deleted_at is None]
    counts = dict(
        db.session.execute(
            select(ArchivedEventCopy.archive_id, func.count())
            .where(ArchivedEventCopy.archive_id.in_(ids))
            .group_by(ArchivedEventCopy.archive_id)
        ).all()
    ) if ids else {}  # fmt: skip
    kept = [a for a in found if a.deleted_at is None]
    return ArchivedMonths(
        loaded=[a for a in kept if counts.get(a.id) == a.events],
        waiting=[a for a in kept if counts.get(a.id) != a.events],
        deleted=[a for a in found if a.deleted_at is not None],
    )


def load_archive(archive: AuditArchive, progress=None, done: int = 0, total: int = 0) -> int:
    """Copy one archive's events into `audit_archive_copies` (again from the start if a load was cut off)."""
    db.session.execute(delete(ArchivedEventCopy).where(ArchivedEventCopy.archive_id == archive.id))
    now, batch, count = utcnow(), [], 0
    for event in read_archive(archive):
        batch.append({**{name: getattr(event, name) for name in COLUMNS}, "archive_id": archive.id,
                      "loaded_at": now})  # fmt: skip
        if len(batch) == BATCH:
            db.session.execute(ArchivedEventCopy.__table__.insert(), batch)
            count += len(batch)
            batch = []
            if progress and total:
                progress(min(99, (done + count) * 100 // total))
    if batch:
        db.session.execute(ArchivedEventCopy.__table__.insert(), batch)
        count += len(batch)
    db.session.commit()
    return count


@task("audit.load_archives")
def load_archives(archive_ids: str, *, progress) -> dict:
    """Load the clinic's archived months (comma-separated archive ids) for searching; idempotent."""
    ids = [int(part) for part in archive_ids.split(",") if part.isdigit()]
    archives = list(
        db.session.scalars(
            select(AuditArchive).where(
                AuditArchive.tenant_id == progress.tenant_id,
                AuditArchive.id.in_(ids),
                AuditArchive.deleted_at.is_(None),
            )
        )
    )
    total, done = sum(a.events for a in archives), 0
    for archive in archives:
        done += load_archive(archive, progress, done, total)
    progress(100)
    return {"months": len(archives), "events": done}


def drop_old_copies() -> int:
    """Periodic: drop loaded copies of archived events a day after loading."""
    removed = db.session.execute(
        delete(ArchivedEventCopy).where(ArchivedEventCopy.loaded_at < utcnow() - COPIES_KEPT_FOR)
    ).rowcount
    db.session.commit()
    return removed
