"""One clinic's data as one ZIP archive, and back (the format: docs/clinic-export-format.md).

- `tables/<table>.json`: every row of the clinic in every table that has a `tenant_id` column (found in
  the models' metadata, so a new table is exported without code here), plus the clinic's `tenants` row and
  its `audit_chain_heads` row; a JSON array, one object per row, values encoded by column type.
- `files/<key>`: every stored object under the clinic's prefix `<tenant id>/` (attachment versions, their
  previews, audit checkpoints and archives), byte for byte as stored (compressed ones stay compressed).
- `manifest.json`: format, schema version (the Alembic revision), per-table row counts, the size and
  SHA-256 of every other member. `settings.json`: the clinic's settings rows, for reading.

Rows and files are streamed (a server-side cursor; files in chunks), so memory stays flat.
Left out: the ICD-10-CM code list (public reference data, loaded by `flask icd10 load`) and the clinic's
own earlier exports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import IO

from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import (
    Date,
    DateTime,
    LargeBinary,
    Numeric,
    Table,
    Time,
    insert,
    inspect,
    select,
    text,
    update,
)

from ..accounts.models import Tenant
from ..clock import utcnow
from ..extensions import db
from ..files.storage import ObjectArchivedError, get_storage

FORMAT = "healthcrm-clinic-export"
FORMAT_VERSION = 1
EXPORTS_FOLDER = "clinic-exports/"
CHUNK = 1024 * 1024
BATCH = 1000
SETTINGS_TABLES = (
    "tenants",
    "scheduling_settings",
    "retention_settings",
    "care_response_targets",
    "clinic_export_schedules",
)
REFERENCE_TABLES = frozenset({"icd10_codes"})
# Copies made for a moment (archived audit events loaded for a search): the archive files are the data.
DISPOSABLE_TABLES = frozenset({"audit_archive_copies"})


class ImportRefused(Exception):
    """The archive cannot be loaded here; nothing was written."""


def code_schema_version() -> str:
    """The newest migration of this version of the application."""
    directory = current_app.extensions["migrate"].directory
    return ScriptDirectory(directory).get_current_head()


def schema_version(*, created_from_models: bool = True) -> str | None:
    """The database's Alembic revision. A database made from the models (`db.create_all`, the test suite)
    has none and is at this code's newest migration."""
    if "alembic_version" in inspect(db.engine).get_table_names():
        return db.session.scalar(text("SELECT version_num FROM alembic_version"))
    return code_schema_version() if created_from_models else None


def clinic_tables() -> list[Table]:
    """The tables an export holds, in foreign-key order (parents first)."""
    return [
        table
        for table in db.metadata.sorted_tables
        if table.name not in REFERENCE_TABLES | DISPOSABLE_TABLES
        and ("tenant_id" in table.c or table.name in ("tenants", "audit_chain_heads"))
    ]


def _rows_of(table: Table, tenant_id: int):
    if table.name == "tenants":
        return select(table).where(table.c.id == tenant_id)
    if table.name == "audit_chain_heads":
        return select(table).where(table.c.chain_key == tenant_id)
    primary = list(table.primary_key.columns)
    return select(table).where(table.c.tenant_id == tenant_id).order_by(*primary)


def _encode(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decoder(column) -> Callable:
    kind = column.type
    if isinstance(kind, DateTime):
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if isinstance(kind, Date):
        return lambda v: None if v is None else date.fromisoformat(v)
    if isinstance(kind, Time):
        return lambda v: None if v is None else time.fromisoformat(v)
    if isinstance(kind, LargeBinary):
        return lambda v: None if v is None else base64.b64decode(v)
    if isinstance(kind, Numeric) and kind.asdecimal:
        return lambda v: None if v is None else Decimal(v)
    return lambda v: v


class _Hashing:
    """A writable member of the ZIP that counts and hashes what goes in."""

    def __init__(self, member: IO[bytes]) -> None:
        self.member, self.sha256, self.size = member, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self.member.write(data)


@dataclass
class Built:
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


def build_archive(tenant_id: int, out: IO[bytes], progress: Callable[[int], None] = lambda _p: None) -> Built:
    """Write the clinic's archive to `out` (a seekable file)."""
    built = Built()
    members: dict[str, dict] = {}
    storage = get_storage(current_app)
    tables = clinic_tables()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for position, table in enumerate(tables, start=1):
            name = f"tables/{table.name}.json"
            with archive.open(name, "w", force_zip64=True) as raw:
                member = _Hashing(raw)
                count = 0
                member.write(b"[")
                result = db.session.execute(_rows_of(table, tenant_id).execution_options(yield_per=BATCH))
                for row in result.mappings():
                    row_json = json.dumps({k: _encode(v) for k, v in row.items()}, separators=(",", ":"))
                    member.write((b",\n" if count else b"\n") + row_json.encode())
                    count += 1
                member.write(b"\n]\n")
            built.rows[table.name] = count
            members[name] = {"size": member.size, "sha256": member.sha256.hexdigest()}
            progress(int(60 * position / len(tables)))
        keys = [
            k for k in storage.list_keys(f"{tenant_id}/") if not k.startswith(f"{tenant_id}/{EXPORTS_FOLDER}")
        ]
        archived: list[str] = []
        for position, key in enumerate(keys, start=1):
            name = f"files/{key}"
            try:
                opened = storage.open_stream(key)
            except ObjectArchivedError:
                archived.append(key)  # in GLACIER / DEEP_ARCHIVE: the manifest names it, not included
                continue
            with opened as source, archive.open(name, "w", force_zip64=True) as raw:
                member = _Hashing(raw)
                while chunk := source.read(CHUNK):
                    member.write(chunk)
            members[name] = {"size": member.size, "sha256": member.sha256.hexdigest()}
            built.files += 1
            built.bytes += member.size
            progress(60 + int(35 * position / max(1, len(keys))))
        settings = _settings(tenant_id)
        archive.writestr("settings.json", settings)
        members["settings.json"] = {
            "size": len(settings.encode()),
            "sha256": hashlib.sha256(settings.encode()).hexdigest(),
        }
        clinic = db.session.get(Tenant, tenant_id)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": schema_version(),
            "tenant": {"id": tenant_id, "name": clinic.name, "slug": clinic.slug},
            "created_at": utcnow().isoformat(),
            "tables": built.rows,
            "files": built.files,
            "members": members,
            "not_included": {
                "icd10_codes": "public reference data: load it with `flask icd10 load`",
                **({"archived_files": archived} if archived else {}),
            },
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
    progress(100)
    return built


def _settings(tenant_id: int) -> str:
    found = {}
    for table in clinic_tables():
        if table.name in SETTINGS_TABLES:
            rows = db.session.execute(_rows_of(table, tenant_id)).mappings()
            found[table.name] = [{k: _encode(v) for k, v in row.items()} for row in rows]
    return json.dumps(found, indent=2)


# --- import -------------------------------------------------------------------------------------------------


def _check_members(archive: zipfile.ZipFile, manifest: dict) -> None:
    for name, expected in manifest["members"].items():
        try:
            member = archive.open(name)
        except KeyError:
            raise ImportRefused(f"{name} is listed in the manifest but missing from the archive.") from None
        digest, size = hashlib.sha256(), 0
        with member:
            while chunk := member.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
            raise ImportRefused(
                f"{name} does not match its checksum in the manifest: the archive was changed."
            )


def _read_rows(archive: zipfile.ZipFile, table: Table) -> Iterator[dict]:
    with archive.open(f"tables/{table.name}.json") as member:
        rows = json.load(member)  # one table at a time
    decoders = {column.name: _decoder(column) for column in table.c}
    for row in rows:
        yield {name: decoders[name](value) for name, value in row.items() if name in decoders}


def import_archive(path: str) -> dict[str, int]:
    """Load an archive into this (empty) database and its storage; returns rows per table.

    Checks first (every checksum, the schema version, an empty database), then writes the files, then
    the rows in one transaction: a refused or failed import leaves no row (files written before a failure
    are overwritten by the next try)."""
    with zipfile.ZipFile(path) as archive:
        try:
            manifest = json.loads(archive.read("manifest.json"))
        except (KeyError, ValueError):
            raise ImportRefused(
                "This is not a HealthCRM clinic export (no readable manifest.json)."
            ) from None
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise ImportRefused("This archive is not a HealthCRM clinic export of format version 1.")
        _check_members(archive, manifest)
        here = schema_version(created_from_models=False)
        if here is None:
            raise ImportRefused("The database has no schema yet: run `flask db upgrade` first.")
        if here != manifest["schema_version"]:
            raise ImportRefused(
                f"The archive is of schema {manifest['schema_version']}, this database of {here}: "
                "import it with the same version of the application."
            )
        if db.session.scalar(select(db.func.count()).select_from(Tenant.__table__)):
            raise ImportRefused("The database is not empty (it has clinics): import into an empty database.")
        storage = get_storage(current_app)
        for name in manifest["members"]:
            if name.startswith("files/"):
                with archive.open(name) as member:
                    storage.put_stream(name.removeprefix("files/"), member, "application/octet-stream")
        return _insert_rows(archive, manifest)


def _insert_rows(archive: zipfile.ZipFile, manifest: dict) -> dict[str, int]:
    tables = [t for t in clinic_tables() if t.name in manifest["tables"]]
    order = {table.name: i for i, table in enumerate(tables)}
    later: list[tuple[Table, object, dict]] = []  # foreign keys to rows not in yet: set after all inserts
    counts = {}
    try:
        for table in tables:
            deferred = [
                column.name
                for column in table.c
                for fk in column.foreign_keys
                if order.get(fk.column.table.name, -1) >= order[table.name]
            ]
            key = next(iter(table.primary_key.columns)).name
            # Columns that change on every UPDATE (updated_at) keep the archive's value in the later one.
            stamped = [column.name for column in table.c if column.onupdate is not None]
            batch, count = [], 0
            for row in _read_rows(archive, table):
                values = {name: row[name] for name in deferred if row.get(name) is not None}
                if values:
                    later.append((table, row[key], values | {name: row.get(name) for name in stamped}))
                    for name in values:
                        row[name] = None
                batch.append(row)
                count += 1
                if len(batch) >= BATCH:
                    db.session.execute(insert(table), batch)
                    batch = []
            if batch:
                db.session.execute(insert(table), batch)
            counts[table.name] = count
        for table, ident, values in later:
            key = next(iter(table.primary_key.columns))
            db.session.execute(update(table).where(key == ident).values(values))
        _restart_sequences(tables)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return counts


def _restart_sequences(tables: list[Table]) -> None:
    if db.session.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        column = next(iter(table.primary_key.columns))
        if column.name == "id" and column.autoincrement is not False and table.name != "jobs":
            db.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608 - table names
                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                )
            )
