"""The local backend's stand-ins for S3's presigned GET, POST and upload-part PUT.

With `STORAGE_BACKEND=local` the browser downloads and uploads through these routes instead of S3. They are
public because the signed token is the authorisation: it names the one key, the operation, the limits and a
deadline, and is signed with the app's SECRET_KEY. With the S3 backend they answer 404.
"""

from __future__ import annotations

import os
from typing import IO

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file

from ..access import public
from ..extensions import csrf
from .storage import (
    DownloadGrant,
    LocalStorage,
    PartTooLargeError,
    SignedURLExpiredError,
    SignedURLInvalidError,
    UploadNotFoundError,
    attachment_disposition,
    get_storage,
    inline_disposition,
)

bp = Blueprint("files", __name__, url_prefix="/files")

# What a browser may render inside the app's own origin. Anything else (HTML, SVG, XML, scripts...) could run
# script there, so it is sent as an attachment even when the link asks for inline; S3 serves from its own
# origin and needs no such rule.
SAFE_INLINE_TYPES = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
        "text/plain",
        "text/csv",
    }
)


def _local_storage() -> LocalStorage:
    storage = get_storage(current_app._get_current_object())  # type: ignore[attr-defined]
    if not isinstance(storage, LocalStorage):
        abort(404)
    return storage


def _refuse(status: int, message: str) -> Response:
    # The caller is a script posting a form straight to storage (as it would to S3), so the answer is data.
    response = jsonify(error=message)
    response.status_code = status
    return response


def _content_disposition(grant: DownloadGrant, key: str, mimetype: str) -> str:
    name = grant.download_name or key.rsplit("/", 1)[-1]
    shown = (grant.inline or not grant.download_name) and mimetype.split(";")[0].strip() in SAFE_INLINE_TYPES
    return inline_disposition(name) if shown else attachment_disposition(name)


def _stream_size(stream: IO[bytes]) -> int:
    # Werkzeug spools uploaded files to a seekable temp file, so the size is known without reading it.
    start = stream.tell()
    stream.seek(0, os.SEEK_END)
    size = stream.tell() - start
    stream.seek(start)
    return size


@bp.get("/local/<token>")
@public
def local_download(token: str) -> Response:
    """Send the object a signed download URL names; 403 when the link expired, 404 when it is not genuine.

    The link decides attachment or inline and may override the type, as S3's response-* parameters do; a
    gzip-stored object goes out as stored with Content-Encoding, and the browser decompresses it.
    """
    storage = _local_storage()
    try:
        grant = storage.verify_download_token(token)
    except SignedURLExpiredError:
        abort(403)
    except SignedURLInvalidError:
        abort(404)
    stored = storage.head(grant.key)
    if stored is None:
        abort(404)
    mimetype = grant.content_type or stored.content_type
    response = send_file(
        storage.local_path(grant.key),
        mimetype=mimetype,
        etag=stored.etag,
        conditional=True,
    )
    response.headers["Content-Disposition"] = _content_disposition(grant, grant.key, mimetype)
    if stored.content_encoding:
        response.headers["Content-Encoding"] = stored.content_encoding
    # Patient files must not linger in shared or browser caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers.pop("Expires", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# What a form upload carries besides the file (key, Content-Type and policy fields, multipart boundaries).
FORM_FIELDS_MAX_BYTES = 64 * 1024


@bp.post("/local-upload/<token>")
@public
@csrf.exempt
def local_upload(token: str) -> Response:
    """Store the form's `file` under the signed key, enforcing the signed type and size, as S3 does."""
    storage = _local_storage()
    try:
        grant = storage.verify_upload_token(token)
    except SignedURLExpiredError:
        abort(403)
    except SignedURLInvalidError:
        abort(404)
    # Compare the signed limit before reading anything: reading the form would first take in up to the
    # app-wide MAX_CONTENT_LENGTH (50 MB) for a file the grant refuses anyway.
    limit = grant.max_bytes + FORM_FIELDS_MAX_BYTES
    if request.content_length is None:
        return _refuse(411, "Send the upload with its Content-Length.")
    if request.content_length > limit:
        return _refuse(
            413, f"The upload is {request.content_length} bytes; it may have at most {grant.max_bytes} bytes."
        )
    request.max_content_length = limit
    upload = request.files.get("file")
    if upload is None or upload.stream is None:
        return _refuse(400, "The form has no file field named 'file'.")
    if request.form.get("key", grant.key) != grant.key:
        return _refuse(400, "The key field does not match the signed upload.")
    # As on S3, the form's Content-Type field is what counts; without it, the file part's own type.
    content_type = request.form.get("Content-Type") or upload.mimetype
    if content_type != grant.content_type:
        return _refuse(
            400, f"This upload must have content type {grant.content_type}, not {content_type or 'none'}."
        )
    size = _stream_size(upload.stream)
    if size == 0:
        return _refuse(400, "The file is empty.")
    if size > grant.max_bytes:
        return _refuse(413, f"The file is {size} bytes; this upload allows at most {grant.max_bytes} bytes.")
    stored = storage.put_stream(
        grant.key, upload.stream, grant.content_type, storage_class=grant.storage_class
    )
    # S3 answers a successful form upload with 204 and the ETag; scripts treat both backends alike.
    response = Response(status=204)
    response.headers["ETag"] = f'"{stored.etag}"'
    return response


@bp.put("/local-part/<token>")
@public
@csrf.exempt
def local_part(token: str) -> Response:
    """Store the body as one part of a multipart upload, streamed to disk; answer its ETag, as S3 does.

    The browser's script reads the ETag header and sends it back when it completes the upload.
    """
    storage = _local_storage()
    try:
        grant = storage.verify_part_token(token)
    except SignedURLExpiredError:
        abort(403)
    except SignedURLInvalidError:
        abort(404)
    size = request.content_length
    if size is None:
        # Without a length the part could only be bounded by reading it; S3 refuses it too.
        return _refuse(411, "A part needs a Content-Length header.")
    if size > grant.max_bytes:
        return _refuse(413, f"A part may have at most {grant.max_bytes} bytes, not {size}.")
    # The signed limit bounds a part, not the app-wide MAX_CONTENT_LENGTH meant for forms.
    request.max_content_length = grant.max_bytes
    try:
        part = storage.put_part(
            grant.key, grant.upload_id, grant.part_number, request.stream, size, grant.max_bytes
        )
    except UploadNotFoundError:
        return _refuse(404, "This upload was completed or cancelled.")
    except PartTooLargeError as error:
        return _refuse(413, f"{error}.")
    except ValueError as error:
        return _refuse(400, f"{error}.")
    response = Response(status=200)
    response.headers["ETag"] = f'"{part.etag}"'
    return response
