"""Where attachment bytes live: one interface, two backends.

`LocalStorage` keeps objects in a folder (the embedded default, `instance/storage/`) with the same key
layout as S3, so moving a clinic from one machine to S3 is a copy of the tree. `S3Storage` talks to S3 or any
S3-compatible store with SigV4 and server-side encryption on every object it writes.

Both backends stream: no operation reads a whole file into memory, so a 50 MB DICOM costs a few chunk buffers,
not 50 MB per request. Every call validates its key first, so a key built from user input can never escape the
tenant's prefix or, for the local folder, the storage root.

Browsers upload straight to the store: a presigned POST for small files, a multipart upload with one presigned
PUT per part for large ones (resumable: `list_parts` says what already arrived). The local backend plays S3's
part in healthcrm/files/views.py, keeping open uploads in the hidden `.uploads/` folder of its root.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from flask import Flask, has_request_context, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ...config import ConfigError

# Streaming: local copies and upload parts move in chunks of this size, so memory per upload stays bounded.
UPLOAD_CHUNK_BYTES = 1024 * 1024
# Below this size S3 gets one PUT; above it boto3 sends a multipart upload of MULTIPART_CHUNK_BYTES parts.
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
MULTIPART_CHUNK_BYTES = 8 * 1024 * 1024
# Parts uploaded at once; with MULTIPART_CHUNK_BYTES this caps the memory one upload may hold (~32 MiB).
MULTIPART_CONCURRENCY = 4
# S3 refuses presigned URLs that live longer than 7 days; the local backend keeps the same limit.
PRESIGNED_MAX_SECONDS = 7 * 24 * 3600
# Download links to patient files are shorter-lived: a leaked or forwarded link stops working within the hour.
DOWNLOAD_URL_MAX_SECONDS = 3600
# S3's limit for a single POST upload.
PRESIGNED_POST_MAX_BYTES = 5 * 1024**3
# Browser multipart uploads: S3 refuses a part below this size unless it is the last one, and numbers parts
# 1..MULTIPART_MAX_PARTS. The local backend enforces the same rules, so a client that works on one works on
# both.
MULTIPART_MIN_PART_BYTES = 5 * 1024 * 1024
MULTIPART_MAX_PARTS = 10_000
# What the local part route accepts per part (S3's own limit is 5 GiB; browsers send parts of a few MiB).
MAX_PART_BYTES = 64 * 1024 * 1024
# S3 lists at most this many parts per request.
LIST_PARTS_PAGE_SIZE = 1000
# How long browsers may cache a CORS preflight answer for the bucket.
CORS_MAX_AGE_SECONDS = 3000
MAX_KEY_CHARS = 1024
SAFE_NAME_MAX_CHARS = 100
# Longer "extensions" are more likely part of the name than a type, so they are truncated with the stem.
SAFE_EXTENSION_MAX_CHARS = 16
FALLBACK_NAME = "file"
KEY_AREA = "medical-records"

SSE_ALGORITHM = "AES256"
DEFAULT_STORAGE_CLASS = "STANDARD"
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
    }
)
DEFAULT_CONTENT_TYPE = "application/octet-stream"

LOCAL_SIGNING_SALT = "local-storage"
# Paths of the local presigned routes (healthcrm/files/views.py), used when no request is active for url_for.
LOCAL_DOWNLOAD_PATH = "/files/local"
LOCAL_UPLOAD_PATH = "/files/local-upload"
LOCAL_PART_PATH = "/files/local-part"
# Object metadata of the local backend lives in a parallel tree; keys never have a segment starting with ".",
# so neither this folder nor the temporary files can collide with an object.
LOCAL_META_DIR = ".meta"
# Open multipart uploads of the local backend: `.uploads/<upload id>/` holds the upload's JSON and its parts.
LOCAL_UPLOADS_DIR = ".uploads"
LOCAL_UPLOAD_STATE_FILE = "upload.json"
# A local part file starts with the MD5 hex of its data, filled in before the rename, so a part and its ETag
# appear together or not at all (a separate ETag file could be left behind by a crash between two renames).
LOCAL_PART_ETAG_CHARS = 32
STORAGE_EXTENSION = "healthcrm_storage"

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_SEPARATOR_RUN = re.compile(r"[._-]{2,}")
_BARE_EXTENSION = re.compile(rf"^\.[A-Za-z0-9]{{1,{SAFE_EXTENSION_MAX_CHARS}}}$")
_ID_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_LOCAL_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_LOCAL_PART_FILE = re.compile(r"^([0-9]{5})\.part$")


class ObjectNotFoundError(FileNotFoundError):
    """No object is stored under the key."""


class SignedURLInvalidError(ValueError):
    """A local presigned URL was tampered with, signed with another key, or made for another operation."""


class SignedURLExpiredError(SignedURLInvalidError):
    """A local presigned URL was genuine but has expired."""


class UploadNotFoundError(LookupError):
    """No open multipart upload has this id for this key: it never existed, was aborted, or was completed."""


class PartTooLargeError(ValueError):
    """A part's body is larger than its limit or than its Content-Length said."""


@dataclass(frozen=True)
class StoredObject:
    """What a backend knows about a stored object. `last_modified` is timezone-aware UTC."""

    key: str
    size: int
    content_type: str
    etag: str
    storage_class: str
    last_modified: datetime
    # "gzip" when the bytes are stored compressed; downloads carry it as Content-Encoding.
    content_encoding: str | None = None


@dataclass(frozen=True)
class UploadedPart:
    """One part of an open multipart upload. `etag` is the part's MD5 hex, without quotes."""

    part_number: int
    size: int
    etag: str


@dataclass(frozen=True)
class DownloadGrant:
    """What a verified local download URL allows."""

    key: str
    download_name: str | None
    inline: bool = False
    content_type: str | None = None


@dataclass(frozen=True)
class UploadGrant:
    """What a verified local upload URL allows."""

    key: str
    content_type: str
    max_bytes: int
    storage_class: str | None = None


@dataclass(frozen=True)
class PartGrant:
    """What a verified local part URL allows."""

    key: str
    upload_id: str
    part_number: int
    max_bytes: int


# --- keys ---------------------------------------------------------------------------------------------------


def safe_filename(filename: str) -> str:
    """An ASCII file name of `[A-Za-z0-9._-]`, at most SAFE_NAME_MAX_CHARS long, keeping the extension.

    Accents are folded (NFKD, then ASCII), other characters become "-", runs of separators collapse to one,
    leading dots (hidden files, "..") and edge separators are dropped. Falls back to "file".
    """
    folded = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE_NAME_CHARS.sub("-", folded)
    # Keep a dot when a run holds one so "report - final .pdf" still ends in ".pdf".
    name = _SEPARATOR_RUN.sub(lambda run: "." if "." in run.group() else run.group()[0], name)
    if _BARE_EXTENSION.match(name):
        # Nothing but an extension survived (a name in another script, or ".pdf"): keep the type visible.
        name = f"{FALLBACK_NAME}{name}"
    name = name.strip("._-")
    if not name:
        return FALLBACK_NAME
    if len(name) <= SAFE_NAME_MAX_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > SAFE_EXTENSION_MAX_CHARS:
        return name[:SAFE_NAME_MAX_CHARS].rstrip("._-") or FALLBACK_NAME
    stem = stem[: SAFE_NAME_MAX_CHARS - len(extension) - 1].rstrip("._-")
    return f"{stem}.{extension}" if stem else extension[:SAFE_NAME_MAX_CHARS]


def make_key(tenant_id: int | str, record_id: int | str, filename: str, when: datetime | None = None) -> str:
    """A new attachment key: `{tenant}/medical-records/{yyyy}/{mm}/{record}/{uuid}-{safe name}`.

    The tenant comes first so a tenant's files can be listed, exported, measured or erased by prefix; the
    random part makes every upload a new key, so an upload never overwrites another version.
    """
    tenant, record = str(tenant_id), str(record_id)
    for label, value in (("tenant_id", tenant), ("record_id", record)):
        if not _ID_SEGMENT.match(value):
            raise ValueError(f"{label} must be letters, digits, '-' or '_': {value!r}")
    when = when or datetime.now(UTC)
    key = (
        f"{tenant}/{KEY_AREA}/{when.year:04d}/{when.month:02d}/{record}/"
        f"{uuid.uuid4().hex}-{safe_filename(filename)}"
    )
    return validate_key(key)


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative object key, else raise ValueError.

    Refused: empty keys, absolute paths, backslashes, control characters, empty segments ("a//b", trailing
    "/"), and segments starting with "." (which covers "." and ".." and keeps the local backend's own hidden
    files out of reach).
    """
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"storage key is longer than {MAX_KEY_CHARS} characters")
    if key.startswith("/"):
        raise ValueError(f"storage key must be relative: {key!r}")
    if "\\" in key:
        raise ValueError(f"storage key must not contain a backslash: {key!r}")
    if _CONTROL_CHARS.search(key):
        raise ValueError(f"storage key must not contain control characters: {key!r}")
    for segment in key.split("/"):
        if not segment:
            raise ValueError(f"storage key has an empty segment: {key!r}")
        if segment.startswith("."):
            raise ValueError(f"storage key segment must not start with '.': {key!r}")
    return key


def _check_expiry(expires_seconds: int) -> int:
    if not 1 <= int(expires_seconds) <= PRESIGNED_MAX_SECONDS:
        raise ValueError(f"expires_seconds must be between 1 and {PRESIGNED_MAX_SECONDS}")
    return int(expires_seconds)


def _check_max_bytes(max_bytes: int) -> int:
    if not 1 <= int(max_bytes) <= PRESIGNED_POST_MAX_BYTES:
        raise ValueError(f"max_bytes must be between 1 and {PRESIGNED_POST_MAX_BYTES}")
    return int(max_bytes)


def _check_download_expiry(expires_seconds: int) -> int:
    if not 1 <= int(expires_seconds) <= DOWNLOAD_URL_MAX_SECONDS:
        raise ValueError(f"download links live between 1 and {DOWNLOAD_URL_MAX_SECONDS} seconds")
    return int(expires_seconds)


def _check_storage_class(storage_class: str) -> str:
    if storage_class not in STORAGE_CLASSES:
        raise ValueError(f"unknown storage class {storage_class!r}")
    return storage_class


def _check_header_value(label: str, value: str | None) -> str | None:
    # The value becomes a response header (local) or a signed request parameter (S3).
    if value is not None and (not isinstance(value, str) or not value or _CONTROL_CHARS.search(value)):
        raise ValueError(f"{label} must be a non-empty string without control characters: {value!r}")
    return value


def _check_part_number(part_number: int) -> int:
    if not 1 <= int(part_number) <= MULTIPART_MAX_PARTS:
        raise ValueError(f"part numbers go from 1 to {MULTIPART_MAX_PARTS}, not {part_number}")
    return int(part_number)


def _check_completion_parts(parts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The parts to join, ETags unquoted; refused unless non-empty and in ascending order, as S3 does."""
    checked = [(_check_part_number(number), str(etag).strip('"')) for number, etag in parts]
    if not checked:
        raise ValueError("a multipart upload is completed with at least one part")
    numbers = [number for number, _ in checked]
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise ValueError("parts must be listed once each, in ascending order of part number")
    if any(not etag for _, etag in checked):
        raise ValueError("every part needs the ETag its upload answered with")
    return checked


def _multipart_etag(part_md5s: list[str]) -> str:
    # S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, then "-<part count>".
    digest = hashlib.md5(b"".join(bytes.fromhex(md5) for md5 in part_md5s), usedforsecurity=False)
    return f"{digest.hexdigest()}-{len(part_md5s)}"


def _disposition(kind: str, download_name: str) -> str:
    fallback = safe_filename(download_name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(download_name, safe='')}"


def attachment_disposition(download_name: str) -> str:
    """A Content-Disposition value that offers `download_name` (any Unicode) as an attachment (RFC 6266)."""
    return _disposition("attachment", download_name)


def inline_disposition(download_name: str) -> str:
    """A Content-Disposition value that shows the file in the browser, saved as `download_name` (RFC 6266)."""
    return _disposition("inline", download_name)


# --- the interface ------------------------------------------------------------------------------------------


class Storage(ABC):
    """Object storage for attachments. Keys are validated with `validate_key` on every call."""

    @abstractmethod
    def put_stream(
        self,
        key: str,
        fileobj: IO[bytes],
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> StoredObject:
        """Store what `fileobj` yields (in chunks, never all at once) under `key`; return what was stored.

        `content_encoding` ("gzip") says the bytes are compressed; downloads send it as Content-Encoding so
        the browser decompresses them. `open_stream` returns the stored (compressed) bytes.
        """

    @abstractmethod
    def open_stream(self, key: str) -> IO[bytes]:
        """A readable binary file-like object over the object's bytes; the caller closes it.

        Raises ObjectNotFoundError when nothing is stored under `key`.
        """

    @abstractmethod
    def head(self, key: str) -> StoredObject | None:
        """The object's size, type, ETag, storage class and modification time; None if it does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (as on S3)."""

    @abstractmethod
    def presigned_get(
        self,
        key: str,
        expires_seconds: int,
        download_name: str | None = None,
        *,
        inline: bool = False,
        content_type: str | None = None,
    ) -> str:
        """A URL that downloads the object without a session for `expires_seconds` (at most an hour).

        With `download_name` the browser is told to save it as an attachment under that name, or with
        `inline=True` to show it (saving it under that name). `content_type` overrides the stored type.
        """

    @abstractmethod
    def presigned_post(
        self,
        key: str,
        content_type: str,
        max_bytes: int,
        expires_seconds: int,
        storage_class: str | None = None,
    ) -> dict[str, Any]:
        """`{"url": ..., "fields": {...}}` for a browser form upload of 1..max_bytes bytes of `content_type`.

        The client posts the fields, then the file as the last field named `file`. With `storage_class` the
        object is stored in that class (S3 enforces it through the policy; the local backend records it).
        """

    # Browser multipart uploads: create, then PUT each part to its presigned URL (the answer's ETag header is
    # the part's ETag), then complete with the (part number, ETag) pairs. An interrupted upload resumes from
    # list_parts. Every call after create raises UploadNotFoundError once the upload is aborted or completed.

    @abstractmethod
    def create_multipart_upload(
        self,
        key: str,
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> str:
        """Open a multipart upload to `key` and return its upload id."""

    @abstractmethod
    def presigned_upload_part(self, key: str, upload_id: str, part_number: int, expires_seconds: int) -> str:
        """A URL the browser PUTs part `part_number` (1..10000) to; the answer carries the part's ETag."""

    @abstractmethod
    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts stored so far, by part number. Raises UploadNotFoundError."""

    @abstractmethod
    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> StoredObject:
        """Join `parts` ((part number, ETag), ascending) into the object under `key` and close the upload.

        Raises ValueError when a part is missing, its ETag does not match, or a part but the last is smaller
        than MULTIPART_MIN_PART_BYTES; the upload then stays open. Raises UploadNotFoundError.
        """

    @abstractmethod
    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; aborting an unknown, aborted or completed upload is not an error."""

    def storage_class(self, key: str) -> str:
        """The object's storage class ("STANDARD" when the store does not say). Raises ObjectNotFoundError."""
        stored = self.head(key)
        if stored is None:
            raise ObjectNotFoundError(key)
        return stored.storage_class

    @abstractmethod
    def set_storage_class(self, key: str, storage_class: str) -> None:
        """Move the object to another storage class. Raises ObjectNotFoundError."""


# --- local folder -------------------------------------------------------------------------------------------


class LocalStorage(Storage):
    """Objects as files under `root`, one file per key; metadata as JSON in `root/.meta/<key>`.

    Presigned URLs point at the routes in healthcrm/files/views.py and are signed with the app's SECRET_KEY.
    """

    def __init__(self, root: str | os.PathLike[str], secret_key: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret_key = secret_key

    # paths

    def _resolve_under(self, base: Path, key: str) -> Path:
        validate_key(key)
        path = (base / key).resolve()
        # resolve() follows symlinks, so a link planted inside the tree cannot point the key outside it.
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path

    def local_path(self, key: str) -> Path:
        """The file that holds `key` (which may not exist). For the local download route's send_file."""
        return self._resolve_under(self.root, key)

    def _meta_path(self, key: str) -> Path:
        return self._resolve_under(self.root / LOCAL_META_DIR, key)

    @staticmethod
    def _atomic_write(target: Path, write: Any) -> None:
        """Write through `write(file)` into a temp file beside `target`, fsync, then rename over it.

        The temp file is in the same folder so os.replace is a rename on one filesystem (atomic): readers see
        the old object or the new one, and a crash leaves at most a hidden temp file, never half a file under
        the key.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                write(tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        # The rename itself is durable only once the folder entry is on disk.
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _read_meta(self, key: str) -> dict[str, Any]:
        try:
            return json.loads(self._meta_path(key).read_text())
        except (FileNotFoundError, ValueError):
            # No (or unreadable) metadata: the data file alone still is the object.
            return {}

    def _write_meta(self, key: str, meta: dict[str, Any]) -> None:
        body = json.dumps(meta, sort_keys=True).encode()
        self._atomic_write(self._meta_path(key), lambda tmp: tmp.write(body))

    # operations

    def put_stream(
        self,
        key: str,
        fileobj: IO[bytes],
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> StoredObject:
        path = self.local_path(key)
        storage_class = _check_storage_class(storage_class or DEFAULT_STORAGE_CLASS)
        _check_header_value("content_encoding", content_encoding)
        # S3's ETag of a single-part upload is its MD5, so both backends agree for small objects.
        digest = hashlib.md5(usedforsecurity=False)

        def copy(tmp: IO[bytes]) -> None:
            while chunk := fileobj.read(UPLOAD_CHUNK_BYTES):
                digest.update(chunk)
                tmp.write(chunk)

        self._atomic_write(path, copy)
        return self._finish_object(key, content_type, storage_class, content_encoding, digest.hexdigest())

    def _finish_object(
        self, key: str, content_type: str, storage_class: str, content_encoding: str | None, etag: str
    ) -> StoredObject:
        meta = {"content_type": content_type, "storage_class": storage_class, "etag": etag}
        if content_encoding:
            meta["content_encoding"] = content_encoding
        self._write_meta(key, meta)
        stored = self.head(key)
        if stored is None:  # deleted by someone else in between
            raise ObjectNotFoundError(key)
        return stored

    def open_stream(self, key: str) -> IO[bytes]:
        path = self.local_path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFoundError(key) from None

    def head(self, key: str) -> StoredObject | None:
        path = self.local_path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if not path.is_file():
            return None
        meta = self._read_meta(key)
        return StoredObject(
            key=key,
            size=stat.st_size,
            content_type=meta.get("content_type") or DEFAULT_CONTENT_TYPE,
            etag=meta.get("etag") or f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            storage_class=meta.get("storage_class") or DEFAULT_STORAGE_CLASS,
            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            content_encoding=meta.get("content_encoding") or None,
        )

    def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)
        # Empty folders are left in place: removing them could race with a concurrent put_stream that has just
        # created the folder and is about to create its temp file there.

    def set_storage_class(self, key: str, storage_class: str) -> None:
        _check_storage_class(storage_class)
        if self.head(key) is None:
            raise ObjectNotFoundError(key)
        # A folder has no tiers; the class is recorded so cost reports and lifecycle rules behave as on S3.
        meta = self._read_meta(key)
        meta["storage_class"] = storage_class
        self._write_meta(key, meta)

    # multipart uploads

    def _upload_dir(self, upload_id: str) -> Path:
        # Only ids this backend made (32 hex digits) name a folder, so an id cannot point anywhere else.
        if not isinstance(upload_id, str) or not _LOCAL_UPLOAD_ID.match(upload_id):
            raise UploadNotFoundError(upload_id)
        return self.root / LOCAL_UPLOADS_DIR / upload_id

    def _open_upload(self, key: str, upload_id: str) -> tuple[Path, dict[str, Any]]:
        """The upload's folder and state; UploadNotFoundError unless it is open and belongs to `key`."""
        self.local_path(key)  # validates the key
        folder = self._upload_dir(upload_id)
        try:
            state = json.loads((folder / LOCAL_UPLOAD_STATE_FILE).read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise UploadNotFoundError(upload_id) from None
        if not isinstance(state, dict) or state.get("key") != key:
            # As on S3: an upload id only exists together with its own key.
            raise UploadNotFoundError(upload_id)
        return folder, state

    def create_multipart_upload(
        self,
        key: str,
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> str:
        self.local_path(key)
        state = {
            "key": key,
            "content_type": content_type,
            "storage_class": _check_storage_class(storage_class or DEFAULT_STORAGE_CLASS),
            "content_encoding": _check_header_value("content_encoding", content_encoding),
            # For a sweep of uploads abandoned long ago (S3's AbortIncompleteMultipartUpload rule).
            "created": int(time.time()),
        }
        upload_id = uuid.uuid4().hex
        body = json.dumps(state, sort_keys=True).encode()
        self._atomic_write(self._upload_dir(upload_id) / LOCAL_UPLOAD_STATE_FILE, lambda tmp: tmp.write(body))
        return upload_id

    def presigned_upload_part(self, key: str, upload_id: str, part_number: int, expires_seconds: int) -> str:
        validate_key(key)
        self._upload_dir(upload_id)
        payload = {
            "op": "part",
            "k": key,
            "u": upload_id,
            "p": _check_part_number(part_number),
            "m": MAX_PART_BYTES,
        }
        return self._local_url("files.local_part", LOCAL_PART_PATH, self._sign(payload, expires_seconds))

    def put_part(
        self, key: str, upload_id: str, part_number: int, stream: IO[bytes], size: int, max_bytes: int
    ) -> UploadedPart:
        """Store part `part_number` from `stream`, which must yield exactly `size` (<= `max_bytes`) bytes.

        The local part route's work: the body is copied to disk in chunks while its MD5 is computed, into a
        temp file renamed over the part, so a retried part replaces the old one whole. Raises
        PartTooLargeError, ValueError for a body shorter than `size`, and UploadNotFoundError.
        """
        part_number = _check_part_number(part_number)
        if size > max_bytes:
            raise PartTooLargeError(f"a part may have at most {max_bytes} bytes, not {size}")
        folder, _state = self._open_upload(key, upload_id)
        digest = hashlib.md5(usedforsecurity=False)

        def copy(tmp: IO[bytes]) -> None:
            tmp.write(b"0" * LOCAL_PART_ETAG_CHARS)  # the ETag's place, filled in once the data is in
            received = 0
            while chunk := stream.read(UPLOAD_CHUNK_BYTES):
                received += len(chunk)
                if received > size:
                    raise PartTooLargeError(f"the body is longer than its Content-Length of {size} bytes")
                digest.update(chunk)
                tmp.write(chunk)
            if received < size:
                raise ValueError(f"the body ended after {received} of {size} bytes")
            tmp.seek(0)
            tmp.write(digest.hexdigest().encode("ascii"))

        self._atomic_write(folder / f"{part_number:05d}.part", copy)
        if not (folder / LOCAL_UPLOAD_STATE_FILE).exists():
            # Aborted or completed while this part was arriving: the write above recreated the folder.
            shutil.rmtree(folder, ignore_errors=True)
            raise UploadNotFoundError(upload_id)
        return UploadedPart(part_number=part_number, size=size, etag=digest.hexdigest())

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        folder, _state = self._open_upload(key, upload_id)
        parts = []
        try:
            names = sorted(entry.name for entry in folder.iterdir())
        except FileNotFoundError:
            raise UploadNotFoundError(upload_id) from None
        for name in names:
            match = _LOCAL_PART_FILE.match(name)
            if not match:
                continue  # the state file, or a part still being written
            try:
                with (folder / name).open("rb") as part:
                    etag = part.read(LOCAL_PART_ETAG_CHARS).decode("ascii")
                    size = os.fstat(part.fileno()).st_size - LOCAL_PART_ETAG_CHARS
            except FileNotFoundError:
                continue
            parts.append(UploadedPart(part_number=int(match.group(1)), size=size, etag=etag))
        return parts

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> StoredObject:
        path = self.local_path(key)
        wanted = _check_completion_parts(parts)
        folder, state = self._open_upload(key, upload_id)
        part_md5s: list[str] = []

        def join(tmp: IO[bytes]) -> None:
            # Each part's ETag is checked on the very file that is copied, so a part replaced meanwhile is
            # either the one the caller named or the completion fails.
            for index, (part_number, etag) in enumerate(wanted):
                try:
                    part = (folder / f"{part_number:05d}.part").open("rb")
                except FileNotFoundError:
                    raise ValueError(f"part {part_number} was not uploaded") from None
                with part:
                    stored_etag = part.read(LOCAL_PART_ETAG_CHARS).decode("ascii")
                    if stored_etag != etag:
                        raise ValueError(f"part {part_number} has ETag {stored_etag}, not {etag}")
                    size = os.fstat(part.fileno()).st_size - LOCAL_PART_ETAG_CHARS
                    if size < MULTIPART_MIN_PART_BYTES and index < len(wanted) - 1:
                        raise ValueError(
                            f"part {part_number} has {size} bytes; all parts but the last need at least "
                            f"{MULTIPART_MIN_PART_BYTES}"
                        )
                    while chunk := part.read(UPLOAD_CHUNK_BYTES):
                        tmp.write(chunk)
                part_md5s.append(stored_etag)

        self._atomic_write(path, join)
        stored = self._finish_object(
            key,
            state.get("content_type") or DEFAULT_CONTENT_TYPE,
            state.get("storage_class") or DEFAULT_STORAGE_CLASS,
            state.get("content_encoding"),
            _multipart_etag(part_md5s),
        )
        shutil.rmtree(folder, ignore_errors=True)
        return stored

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            folder, _state = self._open_upload(key, upload_id)
        except UploadNotFoundError:
            return
        shutil.rmtree(folder, ignore_errors=True)

    # presigned URLs

    def _serializer(self) -> URLSafeTimedSerializer:
        if not self._secret_key:
            raise RuntimeError("LocalStorage needs the app's SECRET_KEY to sign URLs")
        return URLSafeTimedSerializer(self._secret_key, salt=LOCAL_SIGNING_SALT)

    def _sign(self, payload: dict[str, Any], expires_seconds: int) -> str:
        # An absolute deadline travels inside the signed payload, so each URL carries its own lifetime.
        return self._serializer().dumps({**payload, "x": int(time.time()) + _check_expiry(expires_seconds)})

    def _verify(self, token: str, operation: str) -> dict[str, Any]:
        try:
            payload = self._serializer().loads(token)
        except BadSignature:
            raise SignedURLInvalidError("bad signature") from None
        if not isinstance(payload, dict) or payload.get("op") != operation:
            # A download URL must not work as an upload URL and vice versa.
            raise SignedURLInvalidError("signed for another operation")
        if time.time() > payload.get("x", 0):
            raise SignedURLExpiredError("link expired")
        try:
            validate_key(payload.get("k", ""))
        except ValueError:
            raise SignedURLInvalidError("signed for an invalid key") from None
        return payload

    @staticmethod
    def _local_url(endpoint: str, path: str, token: str) -> str:
        if has_request_context():
            return url_for(endpoint, token=token, _external=False)
        return f"{path}/{token}"

    def presigned_get(
        self,
        key: str,
        expires_seconds: int,
        download_name: str | None = None,
        *,
        inline: bool = False,
        content_type: str | None = None,
    ) -> str:
        validate_key(key)
        _check_header_value("content_type", content_type)
        payload = {"op": "get", "k": key, "n": download_name, "i": bool(inline), "t": content_type}
        token = self._sign(payload, _check_download_expiry(expires_seconds))
        return self._local_url("files.local_download", LOCAL_DOWNLOAD_PATH, token)

    def presigned_post(
        self,
        key: str,
        content_type: str,
        max_bytes: int,
        expires_seconds: int,
        storage_class: str | None = None,
    ) -> dict[str, Any]:
        validate_key(key)
        payload = {"op": "post", "k": key, "t": content_type, "m": _check_max_bytes(max_bytes)}
        if storage_class:
            payload["s"] = _check_storage_class(storage_class)
        url = self._local_url("files.local_upload", LOCAL_UPLOAD_PATH, self._sign(payload, expires_seconds))
        # The same field names as S3's form, so one browser script uploads to either backend.
        return {"url": url, "fields": {"key": key, "Content-Type": content_type}}

    def verify_download_token(self, token: str) -> DownloadGrant:
        """Key, download name and presentation a local download URL grants; raises SignedURLInvalidError."""
        payload = self._verify(token, "get")
        return DownloadGrant(
            key=payload["k"],
            download_name=payload.get("n"),
            inline=bool(payload.get("i")),
            content_type=payload.get("t"),
        )

    def verify_upload_token(self, token: str) -> UploadGrant:
        """The key, type, size limit and class a local upload URL grants; raises SignedURLInvalidError."""
        payload = self._verify(token, "post")
        return UploadGrant(
            key=payload["k"],
            content_type=payload["t"],
            max_bytes=int(payload["m"]),
            storage_class=payload.get("s"),
        )

    def verify_part_token(self, token: str) -> PartGrant:
        """The upload, part number and size limit a local part URL grants; raises SignedURLInvalidError."""
        payload = self._verify(token, "part")
        try:
            self._upload_dir(payload.get("u"))
            part_number = _check_part_number(payload.get("p", 0))
            max_bytes = int(payload["m"])
        except (UploadNotFoundError, ValueError, TypeError, KeyError):
            raise SignedURLInvalidError("signed for an invalid upload or part") from None
        return PartGrant(
            key=payload["k"], upload_id=payload["u"], part_number=part_number, max_bytes=max_bytes
        )


# --- S3 -----------------------------------------------------------------------------------------------------


class S3Storage(Storage):
    """Objects in one S3 bucket (or an S3-compatible store at `endpoint_url`), SSE-S3 (AES256) on every write.

    Credentials come from boto3's usual chain (environment, shared config, instance role), never from here.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        self.bucket = bucket
        self.region = region
        self.client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=self.client_config(endpoint_url)
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD_BYTES,
            multipart_chunksize=MULTIPART_CHUNK_BYTES,
            max_concurrency=MULTIPART_CONCURRENCY,
            # The CRT client ignores the limits below; stay on the classic one whatever is installed.
            preferred_transfer_client="classic",
        )
        # Each part is read into memory before it is sent; this bounds how many are held at once (boto3's
        # TransferConfig does not take it as an argument, s3transfer reads the attribute).
        self.transfer_config.max_in_memory_upload_chunks = MULTIPART_CONCURRENCY

    @staticmethod
    def client_config(endpoint_url: str | None) -> Config:
        """botocore settings: SigV4 always (boto3 would presign with SigV2 in us-east-1 otherwise)."""
        options: dict[str, Any] = {"signature_version": "s3v4"}
        if endpoint_url:
            # S3-compatible stores are usually reached by a host name without wildcard DNS, and several reject
            # the CRC checksums newer botocore sends on every request by default.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return Config(**options)

    def ensure_bucket(self, default_encryption: bool = True, cors_origins: list[str] | None = None) -> None:
        """Create the bucket if it does not exist (tests and the demo; production buckets are provisioned).

        A bucket created here also gets SSE-S3 as its default encryption, so even an object written by
        another tool is encrypted; an existing bucket keeps its encryption. With `cors_origins` the bucket's
        CORS configuration is (re)set, new bucket or not, so browsers on those origins can upload to
        presigned URLs and read the ETag of each part.
        """
        if isinstance(cors_origins, str):
            raise ValueError("cors_origins is a list of origins, not one string")
        if self._create_bucket() and default_encryption:
            self.client.put_bucket_encryption(
                Bucket=self.bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_ALGORITHM}}]
                },
            )
        if cors_origins:
            self.client.put_bucket_cors(
                Bucket=self.bucket,
                CORSConfiguration={
                    "CORSRules": [
                        {
                            "AllowedOrigins": list(cors_origins),
                            "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
                            "AllowedHeaders": ["*"],
                            # Without it the browser hides each part's ETag, which completion needs.
                            "ExposeHeaders": ["ETag"],
                            "MaxAgeSeconds": CORS_MAX_AGE_SECONDS,
                        }
                    ]
                },
            )

    def _create_bucket(self) -> bool:
        """Create the bucket unless it exists; True when this call created it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if _error_code(error) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as error:
            if _error_code(error) != "BucketAlreadyOwnedByYou":
                raise
            return False
        return True

    def put_stream(
        self,
        key: str,
        fileobj: IO[bytes],
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> StoredObject:
        validate_key(key)
        # ExtraArgs reach PutObject and CreateMultipartUpload alike, so multipart objects are encrypted too.
        extra: dict[str, str] = {"ContentType": content_type, "ServerSideEncryption": SSE_ALGORITHM}
        if storage_class:
            extra["StorageClass"] = _check_storage_class(storage_class)
        if _check_header_value("content_encoding", content_encoding):
            extra["ContentEncoding"] = content_encoding
        self.client.upload_fileobj(fileobj, self.bucket, key, ExtraArgs=extra, Config=self.transfer_config)
        stored = self.head(key)
        if stored is None:  # deleted by someone else in between
            raise ObjectNotFoundError(key)
        return stored

    def open_stream(self, key: str) -> IO[bytes]:
        validate_key(key)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFoundError(key) from None
            raise

    def head(self, key: str) -> StoredObject | None:
        validate_key(key)
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        last_modified = answer["LastModified"]
        return StoredObject(
            key=key,
            size=answer["ContentLength"],
            content_type=answer.get("ContentType") or DEFAULT_CONTENT_TYPE,
            etag=answer.get("ETag", "").strip('"'),
            # S3 omits the header for STANDARD objects.
            storage_class=answer.get("StorageClass") or DEFAULT_STORAGE_CLASS,
            last_modified=last_modified.astimezone(UTC),
            content_encoding=answer.get("ContentEncoding") or None,
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def presigned_get(
        self,
        key: str,
        expires_seconds: int,
        download_name: str | None = None,
        *,
        inline: bool = False,
        content_type: str | None = None,
    ) -> str:
        validate_key(key)
        expires_seconds = _check_download_expiry(expires_seconds)
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key, "ResponseCacheControl": "no-store"}
        if download_name:
            disposition = inline_disposition if inline else attachment_disposition
            params["ResponseContentDisposition"] = disposition(download_name)
        elif inline:
            params["ResponseContentDisposition"] = "inline"
        if _check_header_value("content_type", content_type):
            params["ResponseContentType"] = content_type
        # A gzip-stored object answers with its own Content-Encoding, so the browser decompresses it.
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds)

    def presigned_post(
        self,
        key: str,
        content_type: str,
        max_bytes: int,
        expires_seconds: int,
        storage_class: str | None = None,
    ) -> dict[str, Any]:
        validate_key(key)
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": SSE_ALGORITHM}
        # S3 enforces these at upload time; botocore adds the bucket and key conditions itself.
        conditions: list[Any] = [
            ["content-length-range", 1, _check_max_bytes(max_bytes)],
            {"Content-Type": content_type},
            {"x-amz-server-side-encryption": SSE_ALGORITHM},
        ]
        if storage_class:
            fields["x-amz-storage-class"] = _check_storage_class(storage_class)
            conditions.append({"x-amz-storage-class": storage_class})
        answer = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=_check_expiry(expires_seconds),
        )
        return {"url": answer["url"], "fields": dict(answer["fields"])}

    def set_storage_class(self, key: str, storage_class: str) -> None:
        _check_storage_class(storage_class)
        if self.storage_class(key) == storage_class:
            # S3 refuses a copy onto itself that changes nothing.
            return
        # Copying an object onto itself is how S3 changes its class; SSE must be asked for again or the new
        # copy gets the bucket default. copy_object handles up to 5 GiB, far above the upload limit.
        self.client.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            StorageClass=storage_class,
            ServerSideEncryption=SSE_ALGORITHM,
            MetadataDirective="COPY",
        )

    # multipart uploads

    def create_multipart_upload(
        self,
        key: str,
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> str:
        validate_key(key)
        kwargs: dict[str, str] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            # Asked for here, SSE covers the whole object: parts need no encryption header of their own.
            "ServerSideEncryption": SSE_ALGORITHM,
        }
        if storage_class:
            kwargs["StorageClass"] = _check_storage_class(storage_class)
        if _check_header_value("content_encoding", content_encoding):
            kwargs["ContentEncoding"] = content_encoding
        return self.client.create_multipart_upload(**kwargs)["UploadId"]

    def presigned_upload_part(self, key: str, upload_id: str, part_number: int, expires_seconds: int) -> str:
        validate_key(key)
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": _check_upload_id(upload_id),
            "PartNumber": _check_part_number(part_number),
        }
        return self.client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=_check_expiry(expires_seconds)
        )

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        validate_key(key)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": _check_upload_id(upload_id),
            "MaxParts": LIST_PARTS_PAGE_SIZE,
        }
        parts: list[UploadedPart] = []
        while True:
            try:
                answer = self.client.list_parts(**kwargs)
            except ClientError as error:
                if _error_code(error) in {"NoSuchUpload", "404"}:
                    raise UploadNotFoundError(upload_id) from None
                raise
            parts.extend(
                UploadedPart(
                    part_number=part["PartNumber"], size=part["Size"], etag=part.get("ETag", "").strip('"')
                )
                for part in answer.get("Parts", [])
            )
            if not answer.get("IsTruncated"):
                break
            kwargs["PartNumberMarker"] = answer["NextPartNumberMarker"]
        return sorted(parts, key=lambda part: part.part_number)

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> StoredObject:
        validate_key(key)
        wanted = _check_completion_parts(parts)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=_check_upload_id(upload_id),
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in wanted]},
            )
        except ClientError as error:
            code = _error_code(error)
            if code in {"NoSuchUpload", "404"}:
                raise UploadNotFoundError(upload_id) from None
            if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                raise ValueError(error.response.get("Error", {}).get("Message") or code) from None
            raise
        stored = self.head(key)
        if stored is None:  # deleted by someone else in between
            raise ObjectNotFoundError(key)
        return stored

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        validate_key(key)
        try:
            upload_id = _check_upload_id(upload_id)
        except UploadNotFoundError:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if _error_code(error) not in {"NoSuchUpload", "404"}:
                raise


def _check_upload_id(upload_id: str) -> str:
    # S3's ids are opaque; an empty one would turn an upload call into another operation on the key.
    if not isinstance(upload_id, str) or not upload_id or _CONTROL_CHARS.search(upload_id):
        raise UploadNotFoundError(upload_id)
    return upload_id


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- choosing a backend -------------------------------------------------------------------------------------


def storage_from_config(config: Mapping[str, Any]) -> Storage:
    """A new backend as the config describes (`STORAGE_BACKEND` is "local" or "s3")."""
    backend = (config.get("STORAGE_BACKEND") or "local").lower()
    if backend == "local":
        root = config.get("STORAGE_LOCAL_ROOT")
        if not root:
            raise ConfigError("STORAGE_BACKEND=local needs STORAGE_LOCAL_ROOT.")
        return LocalStorage(root, secret_key=config.get("SECRET_KEY"))
    if backend == "s3":
        if not config.get("S3_BUCKET"):
            raise ConfigError("STORAGE_BACKEND=s3 needs S3_BUCKET.")
        return S3Storage(
            bucket=config["S3_BUCKET"],
            endpoint_url=config.get("S3_ENDPOINT_URL") or None,
            region=config.get("S3_REGION") or None,
        )
    raise ConfigError(f"STORAGE_BACKEND must be 'local' or 's3', not {backend!r}.")


def get_storage(app_or_config: Flask | Mapping[str, Any]) -> Storage:
    """The app's storage backend, made once per app and kept in `app.extensions["healthcrm_storage"]`.

    A plain config mapping (a CLI script, a test) gets a new, uncached backend.
    """
    if isinstance(app_or_config, Flask):
        app = app_or_config
        storage = app.extensions.get(STORAGE_EXTENSION)
        if storage is None:
            storage = app.extensions[STORAGE_EXTENSION] = storage_from_config(app.config)
        return storage
    return storage_from_config(app_or_config)
