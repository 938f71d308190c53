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

from collections.abc import Mapping
from typing import Any

from flask import Flask

from ...config import ConfigError
from .base import (
    ARCHIVED_CLASSES,
    DEFAULT_CONTENT_TYPE,
    DEFAULT_STORAGE_CLASS,
    DOWNLOAD_URL_MAX_SECONDS,
    MULTIPART_MAX_PARTS,
    MULTIPART_MIN_PART_BYTES,
    PRESIGNED_MAX_SECONDS,
    PRESIGNED_POST_MAX_BYTES,
    RESTORE_ONGOING,
    RESTORE_TIERS,
    RESTORED,
    STORAGE_CLASSES,
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
)
from .keys import (
    FALLBACK_NAME,
    KEY_AREA,
    MAX_KEY_CHARS,
    SAFE_EXTENSION_MAX_CHARS,
    SAFE_NAME_MAX_CHARS,
    attachment_disposition,
    inline_disposition,
    make_key,
    safe_filename,
    validate_key,
)
from .local import (
    DEFAULT_RESTORE_SECONDS,
    LOCAL_DOWNLOAD_PATH,
    LOCAL_META_DIR,
    LOCAL_PART_ETAG_CHARS,
    LOCAL_PART_PATH,
    LOCAL_SIGNING_SALT,
    LOCAL_UPLOAD_PATH,
    LOCAL_UPLOAD_STATE_FILE,
    LOCAL_UPLOADS_DIR,
    MAX_PART_BYTES,
    UPLOAD_CHUNK_BYTES,
    LocalStorage,
)
from .s3 import (
    CORS_MAX_AGE_SECONDS,
    LIST_PARTS_PAGE_SIZE,
    MULTIPART_CHUNK_BYTES,
    MULTIPART_CONCURRENCY,
    MULTIPART_THRESHOLD_BYTES,
    SSE_ALGORITHM,
    S3Storage,
)

# What the rest of the app imports from here; each backend lives in its own module.
__all__ = [
    "ARCHIVED_CLASSES",
    "CORS_MAX_AGE_SECONDS",
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_RESTORE_SECONDS",
    "DEFAULT_STORAGE_CLASS",
    "DOWNLOAD_URL_MAX_SECONDS",
    "FALLBACK_NAME",
    "KEY_AREA",
    "LIST_PARTS_PAGE_SIZE",
    "LOCAL_DOWNLOAD_PATH",
    "LOCAL_META_DIR",
    "LOCAL_PART_ETAG_CHARS",
    "LOCAL_PART_PATH",
    "LOCAL_SIGNING_SALT",
    "LOCAL_UPLOADS_DIR",
    "LOCAL_UPLOAD_PATH",
    "LOCAL_UPLOAD_STATE_FILE",
    "MAX_KEY_CHARS",
    "MAX_PART_BYTES",
    "MULTIPART_CHUNK_BYTES",
    "MULTIPART_CONCURRENCY",
    "MULTIPART_MAX_PARTS",
    "MULTIPART_MIN_PART_BYTES",
    "MULTIPART_THRESHOLD_BYTES",
    "PRESIGNED_MAX_SECONDS",
    "PRESIGNED_POST_MAX_BYTES",
    "RESTORED",
    "RESTORE_ONGOING",
    "RESTORE_TIERS",
    "SAFE_EXTENSION_MAX_CHARS",
    "SAFE_NAME_MAX_CHARS",
    "SSE_ALGORITHM",
    "STORAGE_CLASSES",
    "STORAGE_EXTENSION",
    "UPLOAD_CHUNK_BYTES",
    "DownloadGrant",
    "ListedObject",
    "LocalStorage",
    "ObjectArchivedError",
    "ObjectNotFoundError",
    "OpenUpload",
    "PartGrant",
    "PartTooLargeError",
    "S3Storage",
    "SignedURLExpiredError",
    "SignedURLInvalidError",
    "Storage",
    "StoredObject",
    "UploadGrant",
    "UploadNotFoundError",
    "UploadedPart",
    "attachment_disposition",
    "get_storage",
    "inline_disposition",
    "make_key",
    "safe_filename",
    "storage_from_config",
    "validate_key",
]

STORAGE_EXTENSION = "healthcrm_storage"


# --- choosing a backend -------------------------------------------------------------------------------------


def storage_from_config(config: Mapping[str, Any]) -> Storage:
    """A new backend as the config describes (`STORAGE_BACKEND` is "local" or "s3")."""
    backend = (config.get("STORAGE_BACKEND") or "local").lower()
    if backend == "local":
        root = config.get("STORAGE_LOCAL_ROOT")
        if not root:
            raise ConfigError("STORAGE_BACKEND=local needs STORAGE_LOCAL_ROOT.")
        return LocalStorage(
            root,
            secret_key=config.get("SECRET_KEY"),
            restore_seconds=int(config.get("STORAGE_LOCAL_RESTORE_SECONDS", DEFAULT_RESTORE_SECONDS)),
        )
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
