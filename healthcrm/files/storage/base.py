"""The storage interface both backends implement, its errors and results, and the checks they share."""

from __future__ import annotations

import io
import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from .keys import _CONTROL_CHARS

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
# Classes whose objects must be restored before they can be read.
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
RESTORE_TIERS = ("Expedited", "Standard", "Bulk")
RESTORE_ONGOING = "ongoing"
RESTORED = "restored"


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


class ObjectArchivedError(OSError):
    """The object is in an archived class (GLACIER, DEEP_ARCHIVE) with no restored copy: restore it first."""


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
    # For an archived object (GLACIER, DEEP_ARCHIVE): RESTORE_ONGOING while a restore runs, RESTORED while a
    # readable copy exists (until `restore_expires`), None otherwise.
    restore: str | None = None
    restore_expires: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.storage_class in ARCHIVED_CLASSES

    @property
    def readable(self) -> bool:
        """Whether GET answers now: any class but the archived ones, or an archived object restored."""
        return not self.archived or self.restore == RESTORED


@dataclass(frozen=True)
class ListedObject:
    """One object of a listing: what S3's ListObjectsV2 says of it, without a HEAD per object."""

    key: str
    size: int
    storage_class: str
    last_modified: datetime


@dataclass(frozen=True)
class OpenUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


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


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    """S3's limits on object tags, kept by both backends."""
    if len(tags) > 10:
        raise ValueError("an object has at most 10 tags")
    for key, value in tags.items():
        well_formed = isinstance(key, str) and isinstance(value, str)
        if not (well_formed and 0 < len(key) <= 128 and len(value) <= 256):
            raise ValueError(f"bad tag {key!r}={value!r}")
        if _CONTROL_CHARS.search(key) or _CONTROL_CHARS.search(value):
            raise ValueError("tags cannot hold control characters")
    return dict(tags)


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

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix` (a folder such as "3/audit-checkpoints/"), sorted."""

    def put_retained(self, key: str, data: bytes, content_type: str, retain_until: datetime) -> bool:
        """Store `data` so that nobody can change or delete it before `retain_until` where the store can
        promise that (S3 Object Lock in compliance mode); return whether it could. Elsewhere a plain put."""
        self.put_stream(key, io.BytesIO(data), content_type)
        return False

    # --- lifecycle, tags, restores, listings (the storage cost area) ------------------------------------

    @abstractmethod
    def iter_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Every object under `prefix` with its size, class and modification time, in key order, page by
        page (memory stays flat whatever the count)."""

    @abstractmethod
    def list_open_uploads(self, prefix: str) -> list[OpenUpload]:
        """The multipart uploads under `prefix` that are neither completed nor aborted."""

    @abstractmethod
    def get_tags(self, key: str) -> dict[str, str]:
        """The object's tags. Raises ObjectNotFoundError."""

    @abstractmethod
    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        """Replace the object's tags (S3 allows 10, keys up to 128 characters, values up to 256).
        Raises ObjectNotFoundError."""

    @abstractmethod
    def get_lifecycle(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules as S3 spells them (`Rules` of GetBucketLifecycleConfiguration);
        [] when it has none."""

    @abstractmethod
    def put_lifecycle(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's lifecycle rules; [] removes the configuration."""

    @abstractmethod
    def request_restore(self, key: str, *, days: int, tier: str) -> bool:
        """Ask for a readable copy of an archived object for `days` days, at `tier` (Expedited, Standard,
        Bulk). False when a restore is already running (asking again is harmless). Raises
        ObjectNotFoundError, and ValueError for an object that is not archived or a tier its class lacks
        (DEEP_ARCHIVE has no Expedited)."""


def check_restore(stored: StoredObject | None, key: str, days: int, tier: str) -> None:
    """The checks both backends make before a restore."""
    if stored is None:
        raise ObjectNotFoundError(key)
    if not stored.archived:
        raise ValueError(f"{key} is in {stored.storage_class}, which needs no restore")
    if tier not in RESTORE_TIERS or (tier == "Expedited" and stored.storage_class == "DEEP_ARCHIVE"):
        raise ValueError(f"no {tier!r} restore for {stored.storage_class}")
    if not 1 <= days <= 30:
        raise ValueError("a restored copy is kept 1 to 30 days")
