"""The local-folder backend: objects as files under a root, with the same key layout as S3."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from flask import has_request_context, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .base import (
    ARCHIVED_CLASSES,
    DEFAULT_CONTENT_TYPE,
    DEFAULT_STORAGE_CLASS,
    MULTIPART_MIN_PART_BYTES,
    RESTORE_ONGOING,
    RESTORED,
    DownloadGrant,
    ListedObject,
    ObjectArchivedError,
    ObjectNotFoundError,
    OpenUpload,
    PartGrant,
    PartTooLargeError,
    SignedURLExpiredError,
    SignedURLInvalidError,
    Storage,
    StoredObject,
    UploadedPart,
    UploadGrant,
    UploadNotFoundError,
    _check_completion_parts,
    _check_download_expiry,
    _check_expiry,
    _check_header_value,
    _check_max_bytes,
    _check_part_number,
    _check_storage_class,
    _check_tags,
    check_restore,
)
from .keys import validate_key

# Streaming: local copies and upload parts move in chunks of this size, so memory per upload stays bounded.
UPLOAD_CHUNK_BYTES = 1024 * 1024
# What the local part route accepts per part (S3's own limit is 5 GiB; browsers send parts of a few MiB).
MAX_PART_BYTES = 64 * 1024 * 1024

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

# The bucket's own settings (lifecycle rules) of the local backend.
LOCAL_BUCKET_DIR = ".bucket"
DEFAULT_RESTORE_SECONDS = 60

_LOCAL_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_LOCAL_PART_FILE = re.compile(r"^([0-9]{5})\.part$")


def _multipart_etag(part_md5s: list[str]) -> str:
    # S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, then "-<part count>".
    digest = hashlib.md5(b"".join(bytes.fromhex(md5) for md5 in part_md5s), usedforsecurity=False)
    return f"{digest.hexdigest()}-{len(part_md5s)}"


# --- local folder -------------------------------------------------------------------------------------------


class LocalStorage(Storage):
    """Objects as files under `root`, one file per key; metadata as JSON in `root/.meta/<key>`.

    Presigned URLs point at the routes in healthcrm/files/views.py and are signed with the app's SECRET_KEY.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        secret_key: str | None = None,
        restore_seconds: int = DEFAULT_RESTORE_SECONDS,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret_key = secret_key
        # A folder restores nothing; an archived object becomes readable this long after its restore was
        # asked for, so the restore flow (waiting, then ready) is the same as on S3.
        self.restore_seconds = restore_seconds

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
        stored = self.head(key)
        if stored is not None and not stored.readable:
            raise ObjectArchivedError(key)
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
        storage_class = meta.get("storage_class") or DEFAULT_STORAGE_CLASS
        restore, restore_expires = self._restore_state(meta, storage_class)
        return StoredObject(
            key=key,
            size=stat.st_size,
            content_type=meta.get("content_type") or DEFAULT_CONTENT_TYPE,
            etag=meta.get("etag") or f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            storage_class=storage_class,
            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            content_encoding=meta.get("content_encoding") or None,
            restore=restore,
            restore_expires=restore_expires,
        )

    @staticmethod
    def _restore_state(meta: dict[str, Any], storage_class: str) -> tuple[str | None, datetime | None]:
        asked = meta.get("restore")
        if storage_class not in ARCHIVED_CLASSES or not isinstance(asked, dict):
            return None, None
        now = time.time()
        if now >= asked.get("expires", 0):
            return None, None
        if now < asked.get("ready", 0):
            return RESTORE_ONGOING, None
        return RESTORED, datetime.fromtimestamp(asked["expires"], UTC)

    def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)
        # Empty folders are left in place: removing them could race with a concurrent put_stream that has just
        # created the folder and is about to create its temp file there.

    def set_storage_class(self, key: str, storage_class: str) -> None:
        _check_storage_class(storage_class)
        stored = self.head(key)
        if stored is None:
            raise ObjectNotFoundError(key)
        if stored.storage_class == storage_class:
            return
        if not stored.readable:  # as on S3: an archived object is copied out of its class only once restored
            raise ObjectArchivedError(key)
        # A folder has no tiers; the class is recorded so cost reports and lifecycle rules behave as on S3.
        meta = self._read_meta(key)
        meta["storage_class"] = storage_class
        meta.pop("restore", None)
        self._write_meta(key, meta)

    def list_keys(self, prefix: str) -> list[str]:
        return [listed.key for listed in self.iter_objects(prefix)]

    def iter_objects(self, prefix: str) -> Iterator[ListedObject]:
        keys = []
        for path in self.root.rglob("*"):
            # Keys never have a segment starting with ".": the backend's own folders and temp files.
            relative = path.relative_to(self.root).as_posix()
            if not relative.startswith(prefix) or any(p.startswith(".") for p in relative.split("/")):
                continue
            if path.is_file():
                keys.append(relative)
        for key in sorted(keys):
            stored = self.head(key)
            if stored is not None:
                yield ListedObject(key, stored.size, stored.storage_class, stored.last_modified)

    def list_open_uploads(self, prefix: str) -> list[OpenUpload]:
        uploads = []
        for state_file in sorted((self.root / LOCAL_UPLOADS_DIR).glob(f"*/{LOCAL_UPLOAD_STATE_FILE}")):
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            key = state.get("key") if isinstance(state, dict) else None
            if isinstance(key, str) and key.startswith(prefix):
                initiated = datetime.fromtimestamp(state.get("created") or 0, UTC)
                uploads.append(OpenUpload(key, state_file.parent.name, initiated))
        return uploads

    def get_tags(self, key: str) -> dict[str, str]:
        if self.head(key) is None:
            raise ObjectNotFoundError(key)
        return dict(self._read_meta(key).get("tags") or {})

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        tags = _check_tags(tags)
        if self.head(key) is None:
            raise ObjectNotFoundError(key)
        meta = self._read_meta(key)
        meta["tags"] = tags
        self._write_meta(key, meta)

    def _lifecycle_path(self) -> Path:
        return self.root / LOCAL_BUCKET_DIR / "lifecycle.json"

    def get_lifecycle(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self._lifecycle_path().read_text())
        except (FileNotFoundError, ValueError):
            return []

    def put_lifecycle(self, rules: list[dict[str, Any]]) -> None:
        # Stored, never run: a folder has no tiers (as moto stores rules and never runs them).
        body = json.dumps(rules, indent=2, sort_keys=True).encode()
        self._atomic_write(self._lifecycle_path(), lambda tmp: tmp.write(body))

    def request_restore(self, key: str, *, days: int, tier: str) -> bool:
        stored = self.head(key)
        check_restore(stored, key, days, tier)
        if stored.restore == RESTORE_ONGOING:
            return False
        now = time.time()
        meta = self._read_meta(key)
        ready = now + self.restore_seconds
        meta["restore"] = {"tier": tier, "asked": now, "ready": ready, "expires": ready + days * 86400}
        self._write_meta(key, meta)
        return True

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
