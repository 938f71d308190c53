"""The local backend's stand-ins for S3's presigned GET and POST.

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
from .storage import LocalStorage, SignedURLExpiredError, SignedURLInvalidError, get_storage

bp = Blueprint("files", __name__, url_prefix="/files")


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
    """Send the object a signed download URL names; 403 when the link expired, 404 when it is not genuine."""
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
    response = send_file(
        storage.local_path(grant.key),
        mimetype=stored.content_type,
        as_attachment=bool(grant.download_name),
        download_name=grant.download_name or None,
        etag=stored.etag,
        conditional=True,
    )
    # Patient files must not linger in shared or browser caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers.pop("Expires", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


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
    stored = storage.put_stream(grant.key, upload.stream, grant.content_type)
    # S3 answers a successful form upload with 204 and the ETag; scripts treat both backends alike.
    response = Response(status=204)
    response.headers["ETag"] = f'"{stored.etag}"'
    return response
